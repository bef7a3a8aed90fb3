// Package testnet makes genesis, keys and configs for N organizations and runs N real guild nodes
// on loopback, each a separate process with its data on disk; it also drives load against them.
//
// A testnet lives in one directory:
//
//	DIR/testnet.json     the manifest: chain ID and, per node, its home, API and P2P addresses
//	DIR/node<i>/         node i's home (config.toml, genesis.json, keys, data/, node.log, node.pid)
//	DIR/wallet/          encrypted wallet keys: faucet, org1..orgN (and each organization that joined)
package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/guild-ledger/guild/wallet"
)

// ManifestFile is the manifest's name inside a testnet directory.
const ManifestFile = "testnet.json"

// PassphraseEnv names the environment variable whose value, when set, encrypts the testnet's
// wallet keys instead of wallet.DefaultTestnetPassphrase.
const PassphraseEnv = "GUILD_PASSPHRASE"

// ErrNoManifest matches the error LoadManifest returns for a directory that holds no testnet.
var ErrNoManifest = errors.New("testnet: no " + ManifestFile)

// Manifest says what a testnet is made of; every command after `up` starts from it.
type Manifest struct {
	ChainID string `json:"chain_id"`
	// Wallet is the keystore directory holding faucet and org1..orgN.
	Wallet string `json:"wallet"`
	// Nodes in order: node i (counting from 1) runs validator org<i>, or, for a node that
	// joined later (Join), the validator of its Org once governance admits it.
	Nodes []Node `json:"nodes"`

	// Dir is the testnet directory the manifest was read from or written to.
	Dir string `json:"-"`
}

// Node is one node of the testnet. Paths are absolute, so that a node's command line (which names
// its home) identifies it; see running.
type Node struct {
	Name   string `json:"name"`
	Home   string `json:"home"`
	API    string `json:"api"` // http://127.0.0.1:<port>
	P2P    string `json:"p2p"` // /ip4/127.0.0.1/tcp/<port>/p2p/<peer id>
	PeerID string `json:"peer_id"`
	// Org names the organization of a node added by Join (its wallet key); "" means org<i>.
	Org string `json:"org,omitempty"`
	// Joined marks a node added by Join: not in genesis, it is a validator only once governance
	// makes it one, and it cannot connect before (so Up does not wait for its first block).
	Joined bool `json:"joined,omitempty"`
}

// LoadManifest reads DIR/testnet.json. A directory without one gives an error matching
// ErrNoManifest.
func LoadManifest(dir string) (*Manifest, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(abs, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (run `guild testnet up --dir %s` first)", ErrNoManifest, dir, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("testnet: reading manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("testnet: parsing %s: %w", filepath.Join(abs, ManifestFile), err)
	}
	if m.ChainID == "" || len(m.Nodes) == 0 {
		return nil, fmt.Errorf("testnet: %s has no chain ID or no nodes", filepath.Join(abs, ManifestFile))
	}
	m.Dir = abs
	return &m, nil
}

// Save writes the manifest to m.Dir, atomically: a half-written manifest would make a directory
// look like a testnet that is not one.
func (m *Manifest) Save() error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(m.Dir, ManifestFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(m.Dir, ManifestFile))
}

// Passphrase is the passphrase of the testnet's wallet keys, from $GUILD_PASSPHRASE if set, else
// wallet.DefaultTestnetPassphrase; source says which, for the operator.
func Passphrase() (pass, source string) {
	if p := os.Getenv(PassphraseEnv); p != "" {
		return p, "keys encrypted with $" + PassphraseEnv
	}
	return wallet.DefaultTestnetPassphrase, fmt.Sprintf("keys encrypted with the default passphrase %q", wallet.DefaultTestnetPassphrase)
}
