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
	"github.com/guild-ledger/guild/state"
)

// InitResult tells an operator what to share with the consortium after `guild node init`.
type InitResult struct {
	Home            string `json:"home"`
	PeerID          string `json:"peer_id"`
	ValidatorPubKey string `json:"validator_pub_key"`
	GenesisWritten  bool   `json:"genesis_written"`
	// Account is the funded account of the one-organization genesis, when one was made.
	Account *InitAccount `json:"account,omitempty"`
}

// InitAccount is the organization's account in a genesis written by init: a consortium member
// (so it can propose and vote in governance) with a balance to spend.
type InitAccount struct {
	Name    string        `json:"name"` // the wallet key's name
	Address state.Address `json:"address"`
	Balance uint64        `json:"balance"`
}

// InitOptions are the choices of `guild node init`.
type InitOptions struct {
	Moniker string
	// Account, when set, is called if init writes a genesis (and only then): it makes the key of
	// the organization's account (in a wallet: the node package holds no account keys) and
	// returns its name and address. That account is funded with AccountBalance and made the
	// organization's member controller, so a chain from `init` then `start` can be used at once.
	Account        func() (name string, addr state.Address, err error)
	AccountBalance uint64
}

// DefaultInitBalance funds the account of a one-organization genesis.
const DefaultInitBalance = 1_000_000_000

// InitHome is InitHomeWith without an account: a genesis with one validator and no member.
func InitHome(home, moniker string) (*InitResult, error) {
	return InitHomeWith(home, InitOptions{Moniker: moniker})
}

// InitHomeWith creates a node's home: node and validator keys (refusing to overwrite keys), a
// config.toml with defaults, and — if there is no genesis.json yet — a genesis in which this
// node's organization is the only validator (and, with opts.Account, the only member, with a
// funded account), so that `init` then `start` works alone. A consortium replaces that genesis
// with the shared one before starting.
func InitHomeWith(home string, opts InitOptions) (*InitResult, error) {
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
	if opts.Moniker != "" {
		cfg.Moniker = opts.Moniker
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
		if opts.Account != nil {
			name, addr, err := opts.Account()
			if err != nil {
				return nil, err
			}
			bal := opts.AccountBalance
			if bal == 0 {
				bal = DefaultInitBalance
			}
			g.Accounts = append(g.Accounts, GenesisAccount{Name: name, Address: addr, Balance: bal})
			g.Members = append(g.Members, state.Member{Name: cfg.Moniker, Controller: addr})
			res.Account = &InitAccount{Name: name, Address: addr, Balance: bal}
		}
		if err := g.Validate(); err != nil {
			return nil, err
		}
		if err := g.Save(genPath); err != nil {
			return nil, fmt.Errorf("node: writing genesis: %w", err)
		}
		res.GenesisWritten = true
	}
	return res, nil
}
