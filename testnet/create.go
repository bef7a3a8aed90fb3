package testnet

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

// Genesis funding of a testnet.
const (
	FaucetName    = "faucet"
	FaucetBalance = 1_000_000_000_000_000
	OrgBalance    = 1_000_000_000
)

// DefaultWalletWorkFactor is the scrypt work factor (log2) of the testnet's wallet keys. age's
// default (18) costs about a second per key on the development machines; 15 keeps `up` quick, and
// these keys guard play money on loopback.
const DefaultWalletWorkFactor = 15

// testnetMemoryLimitMB is each testnet node's memory_limit_mb (see docs/operations.md).
const testnetMemoryLimitMB = 192

// CreateOptions describe a new testnet.
type CreateOptions struct {
	Dir        string // created if missing; must be empty if present
	Validators int    // number of organizations, each with one validator node; default 4
	Backend    string // storage backend of every node; default pebbledb
	Passphrase string // encrypts the wallet keys; default wallet.DefaultTestnetPassphrase
	// WalletWorkFactor is the scrypt work factor of the wallet keys; default
	// DefaultWalletWorkFactor.
	WalletWorkFactor int
	// Proposals sets every node's consensus.proposals ("reference" or "full"); "" keeps the
	// node's default.
	Proposals string
}

// OrgName is the name of organization i (counting from 1): its validator in genesis, its wallet key.
func OrgName(i int) string { return fmt.Sprintf("org%d", i) }

// NodeName is the name of node i (counting from 1), which runs validator OrgName(i).
func NodeName(i int) string { return fmt.Sprintf("node%d", i) }

// Create makes a testnet in opts.Dir: keys, configs and one genesis for every node, wallet keys
// for the faucet and each organization, and the manifest, written last. It starts nothing. On
// failure it removes what it made.
func Create(opts CreateOptions) (m *Manifest, err error) {
	if opts.Validators == 0 {
		opts.Validators = 4
	}
	if opts.Validators < 1 || opts.Validators > 100 {
		return nil, fmt.Errorf("testnet: %d validators: want 1..100", opts.Validators)
	}
	if opts.Backend == "" {
		opts.Backend = "pebbledb"
	}
	if opts.Passphrase == "" {
		opts.Passphrase = wallet.DefaultTestnetPassphrase
	}
	if opts.WalletWorkFactor == 0 {
		opts.WalletWorkFactor = DefaultWalletWorkFactor
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := prepareEmptyDir(dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			removeContents(dir)
		}
	}()

	n := opts.Validators
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	chainID, err := newChainID()
	if err != nil {
		return nil, err
	}
	m = &Manifest{ChainID: chainID, Wallet: filepath.Join(dir, "wallet"), Dir: dir}
	gen := &node.Genesis{ChainID: chainID, GenesisTime: time.Now().UTC().Truncate(time.Second)}
	listen := make([]string, n)
	for i := 1; i <= n; i++ {
		home := filepath.Join(dir, NodeName(i))
		if err := os.MkdirAll(filepath.Join(home, node.DataDir), 0o700); err != nil {
			return nil, err
		}
		nodeKey, err := node.GenerateKeyFile(filepath.Join(home, node.NodeKeyFile))
		if err != nil {
			return nil, err
		}
		valKey, err := node.GenerateKeyFile(filepath.Join(home, node.ValidatorKeyFile))
		if err != nil {
			return nil, err
		}
		peerID, err := p2p.PeerIDFromKey(nodeKey)
		if err != nil {
			return nil, err
		}
		p2pPort, apiPort := ports[2*(i-1)], ports[2*(i-1)+1]
		listen[i-1] = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p2pPort)
		m.Nodes = append(m.Nodes, Node{
			Name:   NodeName(i),
			Home:   home,
			API:    fmt.Sprintf("http://127.0.0.1:%d", apiPort),
			P2P:    fmt.Sprintf("%s/p2p/%s", listen[i-1], peerID),
			PeerID: peerID,
		})
		gen.Validators = append(gen.Validators, node.GenesisValidator{
			Name:   OrgName(i),
			PubKey: hex.EncodeToString(valKey.Public().(ed25519.PublicKey)),
			PeerID: peerID,
			Power:  1,
			// Every node dials the others' announce addresses (Genesis.BootstrapPeers), as
			// after a genesis ceremony across hosts.
			Announce: []string{listen[i-1]},
		})
	}

	ks, err := openKeystore(m.Wallet)
	if err != nil {
		return nil, err
	}
	ks.WorkFactor = opts.WalletWorkFactor
	for _, name := range m.WalletKeys() {
		balance := uint64(OrgBalance)
		if name == FaucetName {
			balance = FaucetBalance
		}
		e, err := ks.Create(name, opts.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("testnet: wallet key %s: %w", name, err)
		}
		gen.Accounts = append(gen.Accounts, node.GenesisAccount{Name: name, Address: e.Address, Balance: balance})
		if name != FaucetName {
			// Each organization is a consortium member acting through its wallet key.
			gen.Members = append(gen.Members, state.Member{Name: name, Controller: e.Address})
		}
	}
	if err := gen.Validate(); err != nil {
		return nil, err
	}

	for i, nd := range m.Nodes {
		cfg := node.DefaultConfig()
		cfg.Moniker = OrgName(i + 1)
		// TCP and QUIC on the same port number (UDP and TCP ports are separate), and mDNS so
		// that nodes would find each other on the machine even without the bootstrap lists.
		// If the UDP port happens to be taken, the node still listens on TCP.
		cfg.P2P.Listen = []string{listen[i], fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", ports[2*i])}
		cfg.P2P.MDNS = true
		// The same list the node derives from genesis, written out so that an operator sees it.
		cfg.P2P.Bootstrap = gen.BootstrapPeers(nd.PeerID)
		cfg.API.Listen = fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])
		cfg.Storage.Backend = opts.Backend
		// Four or more nodes share one machine: each keeps its Go runtime under 192 MiB rather
		// than doubling its heap's peak between collections under load. At 40,000 tx/s offered:
		// 265 MiB resident at 192, 284-295 at 224, up to 304 without, for the same throughput.
		cfg.MemoryLimitMB = testnetMemoryLimitMB
		if opts.Proposals != "" {
			cfg.Consensus.Proposals = opts.Proposals
		}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := node.SaveConfig(nd.Home, cfg); err != nil {
			return nil, err
		}
		if err := gen.Save(filepath.Join(nd.Home, node.GenesisFile)); err != nil {
			return nil, err
		}
	}
	if err := m.Save(); err != nil {
		return nil, err
	}
	return m, nil
}

// openKeystore opens (creating) the wallet directory.
func openKeystore(dir string) (*wallet.Keystore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ks, err := wallet.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("testnet: opening wallet %s: %w", dir, err)
	}
	return ks, nil
}

// WalletKeys names the testnet's wallet keys: the faucet, then one per organization.
func (m *Manifest) WalletKeys() []string {
	names := []string{FaucetName}
	for i, n := range m.Nodes {
		names = append(names, n.OrgName(i+1))
	}
	return names
}

// OrgName is the organization of the node at place i (from 1) of the manifest.
func (n *Node) OrgName(i int) string {
	if n.Org != "" {
		return n.Org
	}
	return OrgName(i)
}

// LoadWalletKey decrypts one of the testnet's wallet keys (faucet, org1..orgN).
func (m *Manifest) LoadWalletKey(name, passphrase string) (ed25519.PrivateKey, state.Address, error) {
	ks, err := wallet.Open(m.Wallet)
	if err != nil {
		return nil, state.Address{}, fmt.Errorf("testnet: opening wallet %s: %w", m.Wallet, err)
	}
	priv, err := ks.Load(name, passphrase)
	if err != nil {
		return nil, state.Address{}, fmt.Errorf("testnet: wallet key %s: %w", name, err)
	}
	return priv, state.AddressFromPubKey(priv.Public().(ed25519.PublicKey)), nil
}

// prepareEmptyDir makes dir, or checks that it exists and is empty, so that Create never mixes a
// new testnet with files it did not write.
func prepareEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("testnet: %s is not empty and holds no %s; remove it or choose another directory", dir, ManifestFile)
	}
	return nil
}

// removeContents empties dir, which prepareEmptyDir found empty or made.
func removeContents(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// freePorts asks the kernel for n distinct free TCP ports on loopback. All listeners stay open
// until every port is chosen, so the n are distinct; another program may still take one before
// the node binds it, which a fresh `up` in a new directory gets around.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testnet: finding a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// newChainID is "guild-testnet-" and 6 random hex digits, so two testnets never accept each
// other's transactions.
func newChainID() (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "guild-testnet-" + hex.EncodeToString(b[:]), nil
}

// FreePorts gives n distinct TCP ports on loopback that were free a moment ago: for addresses that
// must be known before a node starts (announce addresses in a genesis cannot say port 0).
func FreePorts(n int) ([]int, error) { return freePorts(n) }
