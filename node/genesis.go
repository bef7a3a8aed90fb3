package node

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
)

// Genesis is the file every member of the consortium shares: the chain's identity, its validators
// (each binding a consensus key to a libp2p peer ID), and the initial state.
type Genesis struct {
	ChainID     string             `json:"chain_id"`
	GenesisTime time.Time          `json:"genesis_time"`
	Validators  []GenesisValidator `json:"validators"`
	Accounts    []GenesisAccount   `json:"accounts"`
	// Members are the consortium's organizations (state.Member: name and controller account).
	Members []state.Member `json:"members,omitempty"`
	// Params override state.DefaultParams; Threshold (zero: two thirds) passes proposals.
	Params    []state.Param   `json:"params,omitempty"`
	Threshold state.Threshold `json:"threshold,omitzero"`
	// Ops seed the rest of the state (assets, identities, items...): see state.Genesis.
	Ops []state.TxBody `json:"ops,omitempty"`
}

// GenesisValidator binds an organization's validator key to its node's peer ID.
type GenesisValidator struct {
	Name   string `json:"name"`
	PubKey string `json:"pub_key"` // hex ed25519 consensus key
	PeerID string `json:"peer_id"` // libp2p ID of the node that runs this validator
	Power  uint64 `json:"power"`
	// Announce holds multiaddrs (without /p2p/) where this validator's node is reached; every
	// other node dials them at start (BootstrapPeers), so a genesis from a ceremony is enough
	// for the members to find each other.
	Announce []string `json:"announce,omitempty"`
}

// GenesisAccount funds an account at height 0.
type GenesisAccount struct {
	Name    string        `json:"name,omitempty"`
	Address state.Address `json:"address"`
	Balance uint64        `json:"balance"`
}

// MaxChainIDLen bounds chain IDs, which are in every signature.
const MaxChainIDLen = 64

// LoadGenesis reads and checks a genesis file.
func LoadGenesis(path string) (*Genesis, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node: reading genesis: %w", err)
	}
	var g Genesis
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("node: parsing genesis %s: %w", path, err)
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &g, nil
}

// Save writes the genesis as indented JSON (Encode).
func (g *Genesis) Save(path string) error {
	b, err := g.Encode()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Encode is the canonical text of the genesis: indented JSON with a final newline, as Save writes it.
func (g *Genesis) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Hash is the genesis hash that members compare out of band: SHA-256 of Encode, the canonical
// re-encoding of the parsed genesis. For a file written by Save (as `guild genesis collect`
// writes it) that is the SHA-256 of the file's bytes, so `sha256sum genesis.json` agrees; a
// file re-indented by hand keeps its hash, and any change of content changes it.
func (g *Genesis) Hash() (string, error) {
	b, err := g.Encode()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// BootstrapPeers are the full multiaddrs (ending in /p2p/<peer id>) of the other validators'
// announce addresses: what a node dials at start besides [p2p] bootstrap.
func (g *Genesis) BootstrapPeers(self string) []string {
	var out []string
	for _, v := range g.Validators {
		if v.PeerID == "" || v.PeerID == self {
			continue
		}
		for _, a := range v.Announce {
			out = append(out, a+"/p2p/"+v.PeerID)
		}
	}
	return out
}

// Validate checks what every node relies on: a chain ID, at least one validator, distinct keys and
// peer IDs, no zero power, no total power or supply that overflows.
func (g *Genesis) Validate() error {
	if g.ChainID == "" || len(g.ChainID) > MaxChainIDLen {
		return fmt.Errorf("node: genesis chain_id must be 1..%d characters", MaxChainIDLen)
	}
	if len(g.Validators) == 0 {
		return errors.New("node: genesis has no validators")
	}
	keys, peers := map[string]bool{}, map[string]bool{}
	var total uint64
	for i, v := range g.Validators {
		if _, err := v.Key(); err != nil {
			return fmt.Errorf("node: genesis validator %d (%s): %w", i, v.Name, err)
		}
		if v.Power == 0 {
			return fmt.Errorf("node: genesis validator %d (%s) has zero power", i, v.Name)
		}
		if keys[v.PubKey] || (v.PeerID != "" && peers[v.PeerID]) {
			return fmt.Errorf("node: genesis validator %d (%s) repeats a key or peer ID", i, v.Name)
		}
		keys[v.PubKey], peers[v.PeerID] = true, true
		for _, a := range v.Announce {
			if err := checkAnnounce(a); err != nil {
				return fmt.Errorf("node: genesis validator %d (%s): %w", i, v.Name, err)
			}
		}
		if len(v.Announce) > 0 && v.PeerID == "" {
			return fmt.Errorf("node: genesis validator %d (%s) announces addresses but has no peer_id", i, v.Name)
		}
		if total+v.Power < total {
			return errors.New("node: genesis total voting power overflows")
		}
		total += v.Power
	}
	var supply uint64
	seen := map[state.Address]bool{}
	for _, a := range g.Accounts {
		if seen[a.Address] {
			return fmt.Errorf("node: genesis funds account %s twice", a.Address)
		}
		seen[a.Address] = true
		if supply+a.Balance < supply {
			return errors.New("node: genesis total supply overflows")
		}
		supply += a.Balance
	}
	return nil
}

// Key decodes the validator's consensus public key.
func (v GenesisValidator) Key() (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(v.PubKey)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("pub_key must be 64 hex characters of an ed25519 key")
	}
	return ed25519.PublicKey(b), nil
}

// ValidatorSet is the genesis validators as the consensus core sees them.
func (g *Genesis) ValidatorSet() consensus.ValidatorSet {
	var vs consensus.ValidatorSet
	for _, v := range g.Validators {
		k, _ := v.Key() // checked by Validate
		vs.Validators = append(vs.Validators, consensus.Validator{PubKey: k, Power: v.Power})
	}
	return vs
}

// StateGenesis is the genesis state as the state machine takes it: the funding, the members, the
// validators (which the state keeps, for governance to change), parameters and seed operations.
func (g *Genesis) StateGenesis() state.Genesis {
	sg := state.Genesis{TimeMs: g.GenesisTime.UnixMilli(), Accounts: g.StateAccounts(),
		Members: g.Members, Params: g.Params, Threshold: g.Threshold, Ops: g.Ops}
	for _, v := range g.Validators {
		k, _ := v.Key() // checked by Validate
		name := v.Name
		if name == "" {
			// Governance names validators; an unnamed one gets a name every node derives alike.
			name = "validator-" + v.PubKey[:16]
		}
		sg.Validators = append(sg.Validators, state.Validator{Name: name, PubKey: k, PeerID: v.PeerID, Power: v.Power})
	}
	return sg
}

// StateAccounts is the genesis funding as the state machine takes it.
func (g *Genesis) StateAccounts() []state.GenesisAccount {
	out := make([]state.GenesisAccount, 0, len(g.Accounts))
	for _, a := range g.Accounts {
		out = append(out, state.GenesisAccount{Address: a.Address, Balance: a.Balance})
	}
	return out
}

// checkAnnounce accepts a dialable multiaddr without a peer ID: port 0 cannot be dialed, and the
// peer ID is the validator's own field.
func checkAnnounce(a string) error {
	m, err := ma.NewMultiaddr(a)
	if err != nil {
		return fmt.Errorf("announce address %q is not a multiaddr: %v", a, err)
	}
	for _, p := range m.Protocols() {
		if p.Code == ma.P_P2P {
			return fmt.Errorf("announce address %q: leave out /p2p/<peer id> (peer_id says it)", a)
		}
	}
	for _, code := range []int{ma.P_TCP, ma.P_UDP} {
		if port, err := m.ValueForProtocol(code); err == nil && port == "0" {
			return fmt.Errorf("announce address %q: port 0 cannot be dialed", a)
		}
	}
	return nil
}
