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

	"github.com/guild-ledger/guild/state"
)

// The genesis ceremony: N organizations build one genesis without a shared machine. One makes a
// draft (the chain ID, genesis time and parameters), each adds its own entry signed with its
// validator key, and anyone collects the draft into the genesis. Each signature covers the
// entry, the chain ID and a digest of the draft's common part, so neither an entry nor the
// parameters can be changed after an organization signed without collect refusing it; what the
// collector could still do (drop an entry) every member sees when they compare the genesis hash.

// GenesisDraft is the file passed from organization to organization during the ceremony.
type GenesisDraft struct {
	ChainID     string          `json:"chain_id"`
	GenesisTime time.Time       `json:"genesis_time"`
	Params      []state.Param   `json:"params,omitempty"`
	Threshold   state.Threshold `json:"threshold,omitzero"`
	Orgs        []GenesisEntry  `json:"orgs"`
}

// GenesisEntry is one organization's part of the genesis: its validator, the peer ID and
// addresses of its node, and its initial accounts. The first account, if any, controls the
// organization's membership of the consortium.
type GenesisEntry struct {
	Name     string           `json:"name"`
	PubKey   string           `json:"pub_key"` // hex ed25519 validator key, which signs the entry
	PeerID   string           `json:"peer_id"`
	Power    uint64           `json:"power"`
	Announce []string         `json:"announce,omitempty"`
	Accounts []GenesisAccount `json:"accounts,omitempty"`
	Sig      string           `json:"sig"` // hex ed25519 signature over entrySignBytes
}

// ErrGenesisEntry marks an entry that cannot go into a genesis (bad signature, repeated name,
// key or peer ID, bad field).
var ErrGenesisEntry = errors.New("node: bad genesis entry")

// genesisEntryTag separates entry signatures from every other signature of a validator key.
const genesisEntryTag = "guild/genesis-entry/v1"

// maxOrgNameLen bounds an organization's name (it becomes a validator and member name).
const maxOrgNameLen = 64

// NewGenesisDraft starts a ceremony.
func NewGenesisDraft(chainID string, genesisTime time.Time, params []state.Param, threshold state.Threshold) (*GenesisDraft, error) {
	if chainID == "" || len(chainID) > MaxChainIDLen {
		return nil, fmt.Errorf("node: chain ID must be 1..%d characters", MaxChainIDLen)
	}
	return &GenesisDraft{ChainID: chainID, GenesisTime: genesisTime.UTC().Truncate(time.Second),
		Params: params, Threshold: threshold, Orgs: []GenesisEntry{}}, nil
}

// LoadGenesisDraft reads a draft file.
func LoadGenesisDraft(path string) (*GenesisDraft, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node: reading genesis draft: %w", err)
	}
	var d GenesisDraft
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("node: parsing genesis draft %s: %w", path, err)
	}
	if d.ChainID == "" || len(d.ChainID) > MaxChainIDLen {
		return nil, fmt.Errorf("node: genesis draft %s: chain_id must be 1..%d characters", path, MaxChainIDLen)
	}
	return &d, nil
}

// Save writes the draft as indented JSON.
func (d *GenesisDraft) Save(path string) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// AddOrg signs e with valKey (filling its PubKey and Sig) and appends it, refusing a name, key or
// peer ID already in the draft.
func (d *GenesisDraft) AddOrg(e GenesisEntry, valKey ed25519.PrivateKey) error {
	e.PubKey = hex.EncodeToString(valKey.Public().(ed25519.PublicKey))
	if err := d.checkEntry(&e); err != nil {
		return err
	}
	for _, o := range d.Orgs {
		if err := distinct(&o, &e); err != nil {
			return err
		}
	}
	msg, err := d.entrySignBytes(&e)
	if err != nil {
		return err
	}
	e.Sig = hex.EncodeToString(ed25519.Sign(valKey, msg))
	d.Orgs = append(d.Orgs, e)
	return nil
}

// Collect checks every entry (signature, fields, uniqueness) and builds the genesis: one
// validator per organization, their accounts, and each organization with an account as a member
// controlled by its first one. The result is validated as LoadGenesis would.
func (d *GenesisDraft) Collect() (*Genesis, error) {
	if len(d.Orgs) == 0 {
		return nil, fmt.Errorf("%w: the draft has no organization yet (guild genesis add-org)", ErrGenesisEntry)
	}
	g := &Genesis{ChainID: d.ChainID, GenesisTime: d.GenesisTime, Params: d.Params, Threshold: d.Threshold,
		Accounts: []GenesisAccount{}}
	for i := range d.Orgs {
		e := &d.Orgs[i]
		if err := d.checkEntry(e); err != nil {
			return nil, err
		}
		if err := d.verifyEntry(e); err != nil {
			return nil, err
		}
		for j := range i {
			if err := distinct(&d.Orgs[j], e); err != nil {
				return nil, err
			}
		}
		g.Validators = append(g.Validators, GenesisValidator{Name: e.Name, PubKey: e.PubKey, PeerID: e.PeerID,
			Power: e.Power, Announce: e.Announce})
		g.Accounts = append(g.Accounts, e.Accounts...)
		if len(e.Accounts) > 0 {
			g.Members = append(g.Members, state.Member{Name: e.Name, Controller: e.Accounts[0].Address})
		}
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return g, nil
}

func (d *GenesisDraft) verifyEntry(e *GenesisEntry) error {
	pub, err := GenesisValidator{PubKey: e.PubKey}.Key()
	if err != nil {
		return fmt.Errorf("%w: organization %q: %v", ErrGenesisEntry, e.Name, err)
	}
	sig, err := hex.DecodeString(e.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: organization %q: sig is not a hex ed25519 signature", ErrGenesisEntry, e.Name)
	}
	msg, err := d.entrySignBytes(e)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w: organization %q: the signature does not match the entry (changed after it was signed, "+
			"or signed for another draft): ask %s to add it again", ErrGenesisEntry, e.Name, e.Name)
	}
	return nil
}

// checkEntry refuses an entry no genesis could hold, naming the organization.
func (d *GenesisDraft) checkEntry(e *GenesisEntry) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: organization %q: %s", ErrGenesisEntry, e.Name, fmt.Sprintf(format, args...))
	}
	if e.Name == "" || len(e.Name) > maxOrgNameLen {
		return bad("the name must be 1..%d characters", maxOrgNameLen)
	}
	if e.PeerID == "" {
		return bad("no peer_id")
	}
	if e.Power == 0 {
		return bad("zero power")
	}
	for _, a := range e.Announce {
		if err := checkAnnounce(a); err != nil {
			return bad("%v", err)
		}
	}
	seen := map[state.Address]bool{}
	for _, a := range e.Accounts {
		if seen[a.Address] || a.Address == (state.Address{}) {
			return bad("account %s is zero or repeated", a.Address)
		}
		seen[a.Address] = true
	}
	return nil
}

// distinct refuses b when it repeats a's name, validator key or peer ID.
func distinct(a, b *GenesisEntry) error {
	switch {
	case a.Name == b.Name:
		return fmt.Errorf("%w: organization %q is in the draft twice", ErrGenesisEntry, b.Name)
	case a.PubKey == b.PubKey:
		return fmt.Errorf("%w: organization %q uses the validator key of %q", ErrGenesisEntry, b.Name, a.Name)
	case a.PeerID == b.PeerID:
		return fmt.Errorf("%w: organization %q uses the peer ID of %q", ErrGenesisEntry, b.Name, a.Name)
	}
	return nil
}

// draftBase is the common part of a draft, whose digest every entry signs.
type draftBase struct {
	ChainID   string          `cbor:"1,keyasint"`
	TimeNs    int64           `cbor:"2,keyasint"`
	Params    []state.Param   `cbor:"3,keyasint"`
	Threshold state.Threshold `cbor:"4,keyasint"`
}

// signedEntry is what an organization signs: the entry without its signature, and the draft's
// common part.
type signedEntry struct {
	Base     [32]byte        `cbor:"1,keyasint"`
	Name     string          `cbor:"2,keyasint"`
	PubKey   string          `cbor:"3,keyasint"`
	PeerID   string          `cbor:"4,keyasint"`
	Power    uint64          `cbor:"5,keyasint"`
	Announce []string        `cbor:"6,keyasint"`
	Accounts []signedAccount `cbor:"7,keyasint"`
}

type signedAccount struct {
	Name    string        `cbor:"1,keyasint"`
	Address state.Address `cbor:"2,keyasint"`
	Balance uint64        `cbor:"3,keyasint"`
}

// entrySignBytes is tag ‖ 0 ‖ chain ID ‖ 0 ‖ deterministic CBOR of signedEntry, as for every
// other signature of the project.
func (d *GenesisDraft) entrySignBytes(e *GenesisEntry) ([]byte, error) {
	// Empty lists are nil on both sides of a JSON round trip (omitempty), so sign them as nil.
	base, err := state.Marshal(draftBase{ChainID: d.ChainID, TimeNs: d.GenesisTime.UnixNano(), Params: nilIfEmpty(d.Params),
		Threshold: d.Threshold})
	if err != nil {
		return nil, err
	}
	se := signedEntry{Base: sha256.Sum256(base), Name: e.Name, PubKey: e.PubKey, PeerID: e.PeerID, Power: e.Power,
		Announce: nilIfEmpty(e.Announce)}
	for _, a := range e.Accounts {
		se.Accounts = append(se.Accounts, signedAccount{Name: a.Name, Address: a.Address, Balance: a.Balance})
	}
	enc, err := state.Marshal(se)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(genesisEntryTag)+len(d.ChainID)+2+len(enc))
	b = append(b, genesisEntryTag...)
	b = append(b, 0)
	b = append(b, d.ChainID...)
	b = append(b, 0)
	return append(b, enc...), nil
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
