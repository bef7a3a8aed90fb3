package testnet

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

// A new organization joins a running consortium in two steps, as it would in a real one: it
// sets up its node (Join), which knows the chain only from the shared genesis, and the members
// vote it in by governance — AddMember for its wallet key, and SetValidator for its node, in force
// from a stated future height.
//
// Until that validator change is scheduled, the joining node is nobody to the validators: their
// p2p gaters admit only the peers bound to current and scheduled validators (and the observers an
// operator configured), so it is refused right after the handshake and keeps redialing its
// bootstrap peers. The block that passes the change puts its peer ID on every validator's
// allowlist; the next redial connects, block sync fetches the chain, and at the effective height
// its consensus key is in the set. Joining is not made an out-of-band observer grant on purpose:
// the allowlist follows the schedule in state, so the consortium's vote is what admits the
// node. The effective height must leave the node time to sync (MinValidatorDelay is the floor);
// until it has synced, the others still make a quorum without it when they are more than 2f+1.

// JoinOptions describe the organization that joins.
type JoinOptions struct {
	// Name is the organization's name: its wallet key and the validator name to propose;
	// default org<N+1> for a testnet of N nodes.
	Name string
	// Binary runs the node; default: the running executable.
	Binary string
	// Passphrase encrypts the new wallet key; default wallet.DefaultTestnetPassphrase.
	Passphrase string
	// WalletWorkFactor is the scrypt work factor of the wallet key; default DefaultWalletWorkFactor.
	WalletWorkFactor int
}

// Joined is what a governance proposal to admit the new organization needs.
type Joined struct {
	Node Node `json:"node"`
	PID  int  `json:"pid"`
	// Org is the organization's name (its wallet key, and the validator name to propose).
	Org string `json:"org"`
	// ValidatorPubKey is the node's consensus public key, hex.
	ValidatorPubKey string `json:"validator_pub_key"`
	// PeerID is the node's libp2p peer ID (the allowlist binds it to the validator).
	PeerID string `json:"peer_id"`
	// Address is the organization's wallet address, the controller of the member to add.
	Address state.Address `json:"address"`
}

// ErrNameTaken is a join whose organization or node name the testnet already uses.
var ErrNameTaken = errors.New("testnet: name already in use")

// Join adds a node for a new organization to the testnet in dir: keys, a config like the others'
// (loopback ports, mDNS, every existing node as a bootstrap peer), the testnet's genesis unchanged,
// and a wallet key for the organization; it records the node in the manifest (and as a bootstrap
// peer in the other nodes' configs, for their next start), starts it, and waits until its API
// answers. The node starts as a non-validator at height 0; see the comment above for how it
// becomes a validator.
func Join(ctx context.Context, dir string, opts JoinOptions) (*Manifest, *Joined, error) {
	m, err := LoadManifest(dir)
	if err != nil {
		return nil, nil, err
	}
	if opts.Name == "" {
		opts.Name = OrgName(len(m.Nodes) + 1)
	}
	if opts.Passphrase == "" {
		opts.Passphrase = wallet.DefaultTestnetPassphrase
	}
	if opts.WalletWorkFactor == 0 {
		opts.WalletWorkFactor = DefaultWalletWorkFactor
	}
	if slices.Contains(m.WalletKeys(), opts.Name) {
		return m, nil, fmt.Errorf("%w: organization %q", ErrNameTaken, opts.Name)
	}
	gen, err := node.LoadGenesis(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
	if err != nil {
		return m, nil, err
	}
	// The name must also be a valid validator name, and not a genesis one.
	if err := checkJoinName(gen, opts.Name); err != nil {
		return m, nil, err
	}
	name := NodeName(len(m.Nodes) + 1)
	home := filepath.Join(m.Dir, name)
	if _, err := os.Stat(home); err == nil {
		return m, nil, fmt.Errorf("%w: %s exists", ErrNameTaken, home)
	}
	binary := opts.Binary
	if binary == "" {
		if binary, err = os.Executable(); err != nil {
			return m, nil, fmt.Errorf("testnet: finding the guild binary: %w", err)
		}
	}

	nd, valPub, err := makeJoinHome(m, name, home, opts.Name)
	if err != nil {
		os.RemoveAll(home)
		return m, nil, err
	}
	ks, err := openKeystore(m.Wallet)
	if err != nil {
		os.RemoveAll(home)
		return m, nil, err
	}
	ks.WorkFactor = opts.WalletWorkFactor
	e, err := ks.Create(opts.Name, opts.Passphrase)
	if err != nil {
		os.RemoveAll(home)
		return m, nil, fmt.Errorf("testnet: wallet key %s: %w", opts.Name, err)
	}
	m.Nodes = append(m.Nodes, nd)
	if err := m.Save(); err != nil {
		return m, nil, err
	}
	// The others dial it too after their next start (its address is otherwise only learnt once
	// it connects). Running nodes read their config only at start.
	for _, other := range m.Nodes[:len(m.Nodes)-1] {
		cfg, err := node.LoadConfig(other.Home)
		if err != nil {
			return m, nil, err
		}
		if !slices.Contains(cfg.P2P.Bootstrap, nd.P2P) {
			cfg.P2P.Bootstrap = append(cfg.P2P.Bootstrap, nd.P2P)
			if err := node.SaveConfig(other.Home, cfg); err != nil {
				return m, nil, err
			}
		}
	}
	j := &Joined{Node: nd, Org: opts.Name, ValidatorPubKey: hex.EncodeToString(valPub), PeerID: nd.PeerID, Address: e.Address}
	pid, exited, err := start(binary, home)
	if err != nil {
		return m, j, err
	}
	j.PID = pid
	return m, j, waitAPI(ctx, nd, exited)
}

func checkJoinName(gen *node.Genesis, org string) error {
	for _, v := range gen.Validators {
		if v.Name == org {
			return fmt.Errorf("%w: genesis has a validator %q", ErrNameTaken, org)
		}
	}
	for _, mb := range gen.Members {
		if mb.Name == org {
			return fmt.Errorf("%w: genesis has a member %q", ErrNameTaken, org)
		}
	}
	if org == "" || len(org) > 64 {
		return fmt.Errorf("testnet: organization name %q: want 1..64 characters", org)
	}
	return nil
}

// makeJoinHome writes the new node's keys, config and genesis, modelled on the first node's.
func makeJoinHome(m *Manifest, name, home, org string) (Node, ed25519.PublicKey, error) {
	if err := os.MkdirAll(filepath.Join(home, node.DataDir), 0o700); err != nil {
		return Node{}, nil, err
	}
	nodeKey, err := node.GenerateKeyFile(filepath.Join(home, node.NodeKeyFile))
	if err != nil {
		return Node{}, nil, err
	}
	valKey, err := node.GenerateKeyFile(filepath.Join(home, node.ValidatorKeyFile))
	if err != nil {
		return Node{}, nil, err
	}
	peerID, err := p2p.PeerIDFromKey(nodeKey)
	if err != nil {
		return Node{}, nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return Node{}, nil, err
	}
	listen := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ports[0])
	nd := Node{
		Name:   name,
		Org:    org,
		Joined: true,
		Home:   home,
		API:    fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		P2P:    fmt.Sprintf("%s/p2p/%s", listen, peerID),
		PeerID: peerID,
	}
	cfg, err := node.LoadConfig(m.Nodes[0].Home)
	if err != nil {
		return Node{}, nil, err
	}
	cfg.Moniker = org
	cfg.P2P.Listen = []string{listen, fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", ports[0])}
	cfg.P2P.Bootstrap = nil
	for _, other := range m.Nodes {
		cfg.P2P.Bootstrap = append(cfg.P2P.Bootstrap, other.P2P)
	}
	cfg.API.Listen = fmt.Sprintf("127.0.0.1:%d", ports[1])
	if err := cfg.Validate(); err != nil {
		return Node{}, nil, err
	}
	if err := node.SaveConfig(home, cfg); err != nil {
		return Node{}, nil, err
	}
	// The genesis file is copied byte for byte: its hash is the chain's first commitment.
	b, err := os.ReadFile(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
	if err != nil {
		return Node{}, nil, err
	}
	if err := os.WriteFile(filepath.Join(home, node.GenesisFile), b, 0o644); err != nil {
		return Node{}, nil, err
	}
	return nd, valKey.Public().(ed25519.PublicKey), nil
}
