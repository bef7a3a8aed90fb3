package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/guild-ledger/guild/p2p"
)

// InitResult tells an operator what to share with the consortium after `guild node init`.
type InitResult struct {
	Home            string `json:"home"`
	PeerID          string `json:"peer_id"`
	ValidatorPubKey string `json:"validator_pub_key"`
	GenesisWritten  bool   `json:"genesis_written"`
}

// InitHome creates a node's home: node and validator keys (refusing to overwrite keys), a
// config.toml with defaults, and — if there is no genesis.json yet — a genesis in which this node is
// the only validator, so that `init` then `start` works alone. A consortium replaces that genesis
// with the shared one before starting.
func InitHome(home, moniker string) (*InitResult, error) {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	nodeKey, err := GenerateKeyFile(filepath.Join(home, NodeKeyFile))
	if err != nil {
		return nil, err
	}
	valKey, err := GenerateKeyFile(filepath.Join(home, ValidatorKeyFile))
	if err != nil {
		return nil, err
	}
	peerID, err := p2p.PeerIDFromKey(nodeKey)
	if err != nil {
		return nil, err
	}
	cfg := DefaultConfig()
	if moniker != "" {
		cfg.Moniker = moniker
	}
	if _, err := os.Stat(filepath.Join(home, ConfigFile)); os.IsNotExist(err) {
		if err := SaveConfig(home, cfg); err != nil {
			return nil, err
		}
	}
	res := &InitResult{
		Home:            home,
		PeerID:          peerID,
		ValidatorPubKey: hex.EncodeToString(valKey.Public().(ed25519.PublicKey)),
	}
	genPath := filepath.Join(home, GenesisFile)
	if _, err := os.Stat(genPath); os.IsNotExist(err) {
		suffix := make([]byte, 3)
		_, _ = rand.Read(suffix)
		g := &Genesis{
			ChainID:     "guild-local-" + hex.EncodeToString(suffix),
			GenesisTime: time.Now().UTC().Truncate(time.Second),
			Validators:  []GenesisValidator{{Name: cfg.Moniker, PubKey: res.ValidatorPubKey, PeerID: peerID, Power: 1}},
			Accounts:    []GenesisAccount{},
		}
		if err := g.Save(genPath); err != nil {
			return nil, fmt.Errorf("node: writing genesis: %w", err)
		}
		res.GenesisWritten = true
	}
	return res, nil
}
