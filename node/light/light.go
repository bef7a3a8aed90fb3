// Package light checks Guild proofs with no node: a proof file (File) and the chain's genesis
// are enough. It imports no network and no store, only the consensus package's certificate
// check and the state tree's hashing (state/merkle).
//
// A proof file claims one fact — a state entry's value (or its absence) after block Height, or
// a transaction's outcome in block Height — and carries what proves it: block Height+1 (the
// anchor), whose header holds the state root and receipts root of block Height, with the
// certificate of 2f+1 commits that decided it; the path from the fact to that root; and the
// validator set changes from genesis up to the anchor, each proven against a certified block
// signed by the set before it. See docs/proofs.md for the format and every check.
package light

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fxamacker/cbor/v2"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state/merkle"
)

// Version is the proof file format this package writes and reads.
const Version = 2

// Proof types.
const (
	TypeState = "state"
	TypeTx    = "tx"
)

// Ways a proof fails. Each has its own exit code in `guild verify` (ExitCode).
var (
	ErrMalformed           = errors.New("light: malformed proof file")
	ErrWrongChain          = errors.New("light: proof is for another chain")
	ErrUnknownValidatorSet = errors.New("light: validator set of the height cannot be established")
	ErrTooFewSigners       = errors.New("light: certificate is signed by too few validators")
	ErrBadSignature        = errors.New("light: certificate signature does not verify")
	ErrPathMismatch        = errors.New("light: path does not lead to the certified root")
)

// ExitCode is the exit status of `guild verify` for an error of Verify: 0 for nil, a distinct
// code for each way a proof fails (3 to 8; 2 is the command line's usage error), 1 for anything
// else.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrMalformed):
		return 3
	case errors.Is(err, ErrWrongChain):
		return 4
	case errors.Is(err, ErrUnknownValidatorSet):
		return 5
	case errors.Is(err, ErrTooFewSigners):
		return 6
	case errors.Is(err, ErrBadSignature):
		return 7
	case errors.Is(err, ErrPathMismatch):
		return 8
	}
	return 1
}

// Bytes is binary data, as lowercase hex in JSON (one spelling per value, so that no edit of a
// file leaves its meaning unchanged).
type Bytes []byte

func (b Bytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(b)), nil }

func (b *Bytes) UnmarshalText(t []byte) error {
	if bytes.ContainsAny(t, "ABCDEF") {
		return fmt.Errorf("hex must be lowercase")
	}
	v, err := hex.DecodeString(string(t))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Hash is a 32-byte digest, as lowercase hex.
type Hash [32]byte

func (h Hash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

func (h *Hash) UnmarshalText(t []byte) error {
	var b Bytes
	if err := b.UnmarshalText(t); err != nil {
		return err
	}
	if len(b) != len(h) {
		return fmt.Errorf("hash is %d bytes, want %d", len(b), len(h))
	}
	copy(h[:], b)
	return nil
}

// File is a proof file.
type File struct {
	Version int    `json:"version"`
	Type    string `json:"type"`
	ChainID string `json:"chain_id"`
	// Height: the state after this block (type state), or the block that holds the transaction
	// (type tx). The anchor is block Height+1.
	Height uint64    `json:"height"`
	Anchor Certified `json:"anchor"`
	// Validators are the validator set changes from genesis up to the anchor, oldest first.
	Validators []Change `json:"validators"`
	// Schedule shows, against the anchor's state root, that the set of the anchor's height is
	// the last one Validators reached: the governance record naming it as the latest set, or
	// the set that follows it, which takes effect after the anchor.
	Schedule EntryProof  `json:"schedule"`
	State    *EntryProof `json:"state,omitempty"`
	Tx       *TxProof    `json:"tx,omitempty"`
}

// Certified is a block (its canonical CBOR, as the certificate's digest covers it) and the
// certificate (canonical CBOR of consensus.Certificate) that decided it.
type Certified struct {
	Block       Bytes `json:"block"`
	Certificate Bytes `json:"certificate"`
}

// Change is one validator set change: the set snapshot (state key r/vals/<height>) proven
// against the state root of a block certified by the set it replaces, decided before it takes
// effect.
type Change struct {
	Certified
	Proof EntryProof `json:"proof"`
}

// EntryProof is a state entry's value, or its absence, and its path (merkle.StateProof).
type EntryProof struct {
	Key            Bytes  `json:"key"`
	Present        bool   `json:"present"`
	Value          Bytes  `json:"value,omitempty"`
	Siblings       []Hash `json:"siblings"`
	OtherKeyHash   *Hash  `json:"other_key_hash,omitempty"`
	OtherValueHash *Hash  `json:"other_value_hash,omitempty"`
}

// TxProof is a transaction's receipt: leaf Index of Count in the receipts of block Height,
// whose root the anchor's header carries, and the transaction itself.
type TxProof struct {
	Hash    Hash   `json:"hash"`
	Raw     Bytes  `json:"raw"`
	Applied bool   `json:"applied"`
	Index   uint64 `json:"index"`
	Count   uint64 `json:"count"`
	Path    []Hash `json:"path"`
	// Block is the block that holds the transaction (block Height, its canonical CBOR), which the
	// anchor's header names by its digest (prev_hash). It binds Count: an RFC 6962 path proves
	// a leaf for more than one tree size (leaf 1 of 6 and of 7 have the same path), so a count
	// changed in the file still verified (version 1). It also shows Raw is transaction Index.
	Block Bytes `json:"block"`
}

// FromStateProof converts a state proof to its file form.
func FromStateProof(p *merkle.StateProof) EntryProof {
	e := EntryProof{Key: p.Key, Present: p.Present, Value: p.Value, Siblings: make([]Hash, len(p.Siblings))}
	for i := range p.Siblings {
		e.Siblings[i] = p.Siblings[i]
	}
	if p.OtherKeyHash != nil {
		k, v := Hash(*p.OtherKeyHash), Hash(*p.OtherValueHash)
		e.OtherKeyHash, e.OtherValueHash = &k, &v
	}
	if !e.Present {
		e.Value = nil
	}
	return e
}

func (e *EntryProof) stateProof() *merkle.StateProof {
	p := &merkle.StateProof{Key: e.Key, Present: e.Present, Value: e.Value, Siblings: make([]merkle.Hash, len(e.Siblings))}
	if p.Present && p.Value == nil {
		p.Value = []byte{}
	}
	for i := range e.Siblings {
		p.Siblings[i] = e.Siblings[i]
	}
	if e.OtherKeyHash != nil {
		k := merkle.Hash(*e.OtherKeyHash)
		p.OtherKeyHash = &k
	}
	if e.OtherValueHash != nil {
		v := merkle.Hash(*e.OtherValueHash)
		p.OtherValueHash = &v
	}
	return p
}

// verify checks the entry against root.
func (e *EntryProof) verify(root Hash) error {
	err := e.stateProof().Verify(root)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, merkle.ErrMalformed):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return fmt.Errorf("%w: %w", ErrPathMismatch, err)
}

// Encode gives a file's canonical bytes: indented JSON and a final newline. Parse accepts
// nothing else.
func (f *File) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// MaxFileBytes bounds a proof file (its blocks are whole blocks).
const MaxFileBytes = 64 << 20

// Parse reads a proof file. It must be exactly as Encode writes it: every byte of a proof file
// means something, so a changed byte can never go unnoticed.
func Parse(b []byte) (*File, error) {
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxFileBytes)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var f File
	if err := d.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	again, err := f.Encode()
	if err != nil || !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: not in canonical form (a byte was changed, or the file was reformatted)", ErrMalformed)
	}
	if f.Version != Version {
		return nil, fmt.Errorf("%w: version %d, this verifier reads %d", ErrMalformed, f.Version, Version)
	}
	return &f, nil
}

// Genesis is what a light client needs of the chain's genesis file.
type Genesis struct {
	ChainID    string `json:"chain_id"`
	Validators []struct {
		Name   string `json:"name"`
		PubKey string `json:"pub_key"`
		Power  uint64 `json:"power"`
	} `json:"validators"`
}

// ParseGenesis reads a genesis file (the node's genesis.json; other fields are ignored).
func ParseGenesis(b []byte) (*Genesis, error) {
	var g Genesis
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("light: parsing genesis: %w", err)
	}
	if g.ChainID == "" || len(g.Validators) == 0 {
		return nil, fmt.Errorf("light: genesis has no chain ID or no validators")
	}
	return &g, nil
}

// validatorSet is the genesis set in the order the chain indexes it: by name, an unnamed
// validator taking "validator-" and the first 16 hex digits of its key (as the node names it).
func (g *Genesis) validatorSet() (consensus.ValidatorSet, error) {
	type named struct {
		name string
		v    consensus.Validator
	}
	var vals []named
	for i, v := range g.Validators {
		k, err := hex.DecodeString(v.PubKey)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return consensus.ValidatorSet{}, fmt.Errorf("light: genesis validator %d: bad public key", i)
		}
		name := v.Name
		if name == "" {
			name = "validator-" + v.PubKey[:16]
		}
		vals = append(vals, named{name, consensus.Validator{PubKey: k, Power: v.Power}})
	}
	slices.SortFunc(vals, func(a, b named) int { return strings.Compare(a.name, b.name) })
	var vs consensus.ValidatorSet
	for _, v := range vals {
		vs.Validators = append(vs.Validators, v.v)
	}
	return vs, nil
}

// header is what the light client reads of a block: the fields it checks, found by their CBOR
// keys; the digest the certificate signs is over the whole block, whatever else it holds.
type header struct {
	ChainID      string      `cbor:"1,keyasint"`
	Height       uint64      `cbor:"2,keyasint"`
	PrevHash     merkle.Hash `cbor:"4,keyasint"`
	StateRoot    merkle.Hash `cbor:"5,keyasint"`
	ReceiptsRoot merkle.Hash `cbor:"12,keyasint"`
}

type blockHeader struct {
	Header header `cbor:"1,keyasint"`
}

// epoch is a validator set and the first height it decides.
type epoch struct {
	from uint64
	set  consensus.ValidatorSet
}

// epochAt is the epoch of height h: the last that starts at or before it.
func epochAt(epochs []epoch, h uint64) epoch {
	e := epochs[0]
	for _, x := range epochs[1:] {
		if x.from <= h {
			e = x
		}
	}
	return e
}

// Result is what a verified proof established.
type Result struct {
	ChainID string
	Height  uint64
	// Epochs is the number of validator sets followed from genesis.
	Epochs int
	// State: the entry's key, and its value (nil when absent).
	Key     []byte
	Present bool
	Value   []byte
	// Tx: the transaction and whether it applied.
	Tx      []byte
	TxHash  Hash
	Applied bool
}

// Chain is the validator sets followed from genesis: each change proven against a block that
// the set before it certified. State sync follows it too, to check a snapshot's certified
// header against the set of its height.
type Chain struct {
	chainID string
	epochs  []epoch
}

// Follow starts a chain at the genesis set and follows changes, oldest first.
func Follow(g *Genesis, changes []Change) (*Chain, error) {
	v0, err := g.validatorSet()
	if err != nil {
		return nil, err
	}
	c := &Chain{chainID: g.ChainID, epochs: []epoch{{0, v0}}}
	for i := range changes {
		if err := c.Add(&changes[i]); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Add follows one more change: its set snapshot proven against a block certified by the last
// set followed, linked to that set, and decided before it takes effect.
func (c *Chain) Add(ch *Change) error {
	n := len(c.epochs) // this is change n (1-based)
	last := c.epochs[n-1]
	h, err := certified(c.chainID, &ch.Certified, c.epochs)
	if err != nil {
		return fmt.Errorf("validator change %d: %w", n, err)
	}
	if err := ch.Proof.verify(h.StateRoot); err != nil {
		return fmt.Errorf("validator change %d: %w", n, err)
	}
	snap, err := validatorSnapshot(&ch.Proof)
	if err != nil {
		return fmt.Errorf("validator change %d: %w", n, err)
	}
	switch {
	case snap.Prev != last.from:
		return fmt.Errorf("%w: validator change %d follows the set of height %d, not %d", ErrUnknownValidatorSet, n, snap.Prev, last.from)
	case snap.Height <= h.Height:
		return fmt.Errorf("%w: validator change %d (height %d) is proven by block %d, which it may have decided", ErrUnknownValidatorSet, n, snap.Height, h.Height)
	}
	c.epochs = append(c.epochs, epoch{snap.Height, snap.set})
	return nil
}

// Epochs is the number of validator sets followed, genesis included.
func (c *Chain) Epochs() int { return len(c.epochs) }

// Last is the first height of the last set followed (0: the genesis set).
func (c *Chain) Last() uint64 { return c.epochs[len(c.epochs)-1].from }

// SetAt is the validator set the chain followed so far gives height h. It decides h only once
// CheckSchedule has shown, at a block at or after h, that no later change was left out.
func (c *Chain) SetAt(h uint64) consensus.ValidatorSet { return epochAt(c.epochs, h).set }

// Header is what the light client reads of a certified block's header.
type Header struct {
	Height       uint64
	PrevHash     merkle.Hash // the digest of the block before
	StateRoot    merkle.Hash
	ReceiptsRoot merkle.Hash
}

// Certified checks a block and its certificate against the set the chain gives its height, and
// returns its header.
func (c *Chain) Certified(cb *Certified) (*Header, error) {
	h, err := certified(c.chainID, cb, c.epochs)
	if err != nil {
		return nil, err
	}
	return &Header{Height: h.Height, PrevHash: h.PrevHash, StateRoot: h.StateRoot, ReceiptsRoot: h.ReceiptsRoot}, nil
}

// CheckSchedule checks that the last set followed is the anchor's: schedule, proven against the
// anchor's state root, is the governance record naming that set as the latest scheduled, or the
// set that follows it, which takes effect after the anchor. Without it a peer could leave the
// last changes out and have a block checked against a set that no longer decides it.
func (c *Chain) CheckSchedule(anchor *Header, schedule *EntryProof) error {
	if err := schedule.verify(anchor.StateRoot); err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	last := c.epochs[len(c.epochs)-1]
	if bytes.Equal(schedule.Key, []byte(keyGov)) {
		lh, err := lastValidatorHeight(schedule)
		if err != nil {
			return fmt.Errorf("schedule: %w", err)
		}
		if lh != last.from {
			return fmt.Errorf("%w: the chain scheduled the set of height %d, the proof follows only up to %d", ErrUnknownValidatorSet, lh, last.from)
		}
		return nil
	}
	snap, err := validatorSnapshot(schedule)
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	if snap.Prev != last.from || snap.Height <= anchor.Height {
		return fmt.Errorf("%w: the next set (height %d, after %d) does not show that the set of height %d decides block %d", ErrUnknownValidatorSet, snap.Height, snap.Prev, last.from, anchor.Height)
	}
	return nil
}

// Verify checks a proof file against a genesis and returns what it proves.
func Verify(f *File, g *Genesis) (*Result, error) {
	if f.ChainID != g.ChainID {
		return nil, fmt.Errorf("%w: the proof is for chain %q, the genesis is of %q", ErrWrongChain, f.ChainID, g.ChainID)
	}
	chain, err := Follow(g, f.Validators)
	if err != nil {
		return nil, err
	}
	anchor, err := chain.Certified(&f.Anchor)
	if err != nil {
		return nil, fmt.Errorf("anchor: %w", err)
	}
	if anchor.Height != f.Height+1 {
		return nil, fmt.Errorf("%w: anchor is block %d, the proof is about block %d", ErrMalformed, anchor.Height, f.Height)
	}
	if err := chain.CheckSchedule(anchor, &f.Schedule); err != nil {
		return nil, err
	}

	res := &Result{ChainID: f.ChainID, Height: f.Height, Epochs: chain.Epochs()}
	switch f.Type {
	case TypeState:
		if f.State == nil || f.Tx != nil {
			return nil, fmt.Errorf("%w: a state proof carries one state entry", ErrMalformed)
		}
		if err := f.State.verify(anchor.StateRoot); err != nil {
			return nil, err
		}
		res.Key, res.Present, res.Value = f.State.Key, f.State.Present, f.State.Value
	case TypeTx:
		t := f.Tx
		if t == nil || f.State != nil {
			return nil, fmt.Errorf("%w: a transaction proof carries one receipt", ErrMalformed)
		}
		if sha256.Sum256(t.Raw) != t.Hash {
			return nil, fmt.Errorf("%w: the transaction's bytes do not have its hash", ErrPathMismatch)
		}
		if err := t.inBlock(anchor.PrevHash, f.Height); err != nil {
			return nil, err
		}
		path := make([]merkle.Hash, len(t.Path))
		for i := range t.Path {
			path[i] = t.Path[i]
		}
		if err := merkle.VerifyReceipt(anchor.ReceiptsRoot, t.Index, t.Count, t.Hash, t.Applied, path); err != nil {
			if errors.Is(err, merkle.ErrMalformed) {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			return nil, fmt.Errorf("%w: %w", ErrPathMismatch, err)
		}
		res.Tx, res.TxHash, res.Applied = t.Raw, t.Hash, t.Applied
	default:
		return nil, fmt.Errorf("%w: unknown proof type %q", ErrMalformed, f.Type)
	}
	return res, nil
}

// certified checks a certified block against the validator set the epochs give its height,
// and returns its header.
func certified(chainID string, c *Certified, epochs []epoch) (*header, error) {
	var b blockHeader
	if err := cbor.Unmarshal(c.Block, &b); err != nil {
		return nil, fmt.Errorf("%w: block: %v", ErrMalformed, err)
	}
	// The certificate's bytes are not hashed anywhere, so they must be its one canonical
	// encoding: otherwise an edit the decoder overlooks (an unknown key) would go unnoticed.
	var cert consensus.Certificate
	if err := strictDec.Unmarshal(c.Certificate, &cert); err != nil {
		return nil, fmt.Errorf("%w: certificate: %v", ErrMalformed, err)
	}
	if again, err := canonicalEnc.Marshal(&cert); err != nil || !bytes.Equal(again, c.Certificate) {
		return nil, fmt.Errorf("%w: certificate is not in canonical encoding", ErrMalformed)
	}
	h := &b.Header
	switch {
	case h.ChainID != chainID:
		return nil, fmt.Errorf("%w: block of chain %q", ErrWrongChain, h.ChainID)
	case cert.Height != h.Height:
		return nil, fmt.Errorf("%w: certificate of height %d for block %d", ErrMalformed, cert.Height, h.Height)
	case cert.Digest != consensus.DigestOf(c.Block):
		return nil, fmt.Errorf("%w: the certificate signs another block than block %d", ErrBadSignature, h.Height)
	}
	err := consensus.VerifyCertificate(chainID, epochAt(epochs, h.Height).set, &cert)
	switch {
	case err == nil:
		return h, nil
	case errors.Is(err, consensus.ErrNoQuorum):
		return nil, fmt.Errorf("%w: block %d: %w", ErrTooFewSigners, h.Height, err)
	case errors.Is(err, consensus.ErrBadSignature):
		return nil, fmt.Errorf("%w: block %d: %w", ErrBadSignature, h.Height, err)
	case errors.Is(err, consensus.ErrUnknownValidator):
		return nil, fmt.Errorf("%w: block %d: %w", ErrUnknownValidatorSet, h.Height, err)
	}
	return nil, fmt.Errorf("%w: block %d: %w", ErrMalformed, h.Height, err)
}

var (
	strictDec    cbor.DecMode
	canonicalEnc cbor.EncMode
)

func init() {
	var err error
	if canonicalEnc, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	strictDec, err = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField, MaxArrayElements: consensus.MaxValidators}.DecMode()
	if err != nil {
		panic(err)
	}
}

// State keys the light client reads (the layout of the state package's records).
const (
	keyGov  = "r/gov"
	keyVals = "r/vals/"
)

type snapshot struct {
	Height     uint64 `cbor:"1,keyasint"`
	Validators []struct {
		PubKey []byte `cbor:"2,keyasint"`
		Power  uint64 `cbor:"4,keyasint"`
	} `cbor:"2,keyasint"`
	Prev uint64 `cbor:"3,keyasint"`
	set  consensus.ValidatorSet
}

// validatorSnapshot decodes a proven r/vals/<height> entry.
func validatorSnapshot(e *EntryProof) (*snapshot, error) {
	if !bytes.HasPrefix(e.Key, []byte(keyVals)) || len(e.Key) != len(keyVals)+8 {
		return nil, fmt.Errorf("%w: key %q is not a validator set", ErrMalformed, e.Key)
	}
	if !e.Present {
		return nil, fmt.Errorf("%w: the validator set %x is absent", ErrUnknownValidatorSet, e.Key[len(keyVals):])
	}
	var s snapshot
	if err := cbor.Unmarshal(e.Value, &s); err != nil {
		return nil, fmt.Errorf("%w: validator set: %v", ErrMalformed, err)
	}
	var h uint64
	for _, b := range e.Key[len(keyVals):] {
		h = h<<8 | uint64(b)
	}
	if h != s.Height || len(s.Validators) == 0 {
		return nil, fmt.Errorf("%w: validator set under %d says height %d", ErrMalformed, h, s.Height)
	}
	for _, v := range s.Validators {
		s.set.Validators = append(s.set.Validators, consensus.Validator{PubKey: v.PubKey, Power: v.Power})
	}
	return &s, nil
}

// lastValidatorHeight decodes the proven r/gov entry's latest scheduled set.
func lastValidatorHeight(e *EntryProof) (uint64, error) {
	if !e.Present {
		return 0, fmt.Errorf("%w: the governance record is absent", ErrMalformed)
	}
	var g struct {
		Last uint64 `cbor:"4,keyasint"`
	}
	if err := cbor.Unmarshal(e.Value, &g); err != nil {
		return 0, fmt.Errorf("%w: governance record: %v", ErrMalformed, err)
	}
	return g.Last, nil
}

// Describe names a state key for people: its kind and arguments.
func Describe(key []byte) string {
	k := string(key)
	switch {
	case strings.HasPrefix(k, "a/") && len(k) == 22:
		return "account " + hex.EncodeToString(key[2:])
	case strings.HasPrefix(k, keyVals) && len(k) == len(keyVals)+8:
		var h uint64
		for _, b := range key[len(keyVals):] {
			h = h<<8 | uint64(b)
		}
		return fmt.Sprintf("validator set from height %d", h)
	case strings.HasPrefix(k, "r/notary/") && len(k) == 9+32:
		return "notary anchor " + hex.EncodeToString(key[9:])
	case strings.HasPrefix(k, "r/bal/") && len(k) > 26:
		return fmt.Sprintf("balance of %s in %s", hex.EncodeToString(key[6:26]), k[26:])
	case k == keyGov:
		return "governance record"
	}
	for _, kind := range []string{"item", "ident", "claim", "escrow", "ballot", "prop", "asset"} {
		if p := "r/" + kind + "/"; strings.HasPrefix(k, p) {
			return kind + " " + k[len(p):]
		}
	}
	return fmt.Sprintf("key %q", k)
}

// ValueJSON shows a stored value (CBOR) as JSON for people: maps keyed by their integer field
// numbers, bytes as hex. It is a reading aid; what was verified is the value's bytes.
func ValueJSON(v []byte) string { return valueJSON(nil, v) }

// fieldNames are the JSON names of the records' CBOR fields (index = field number), as the node's
// API names them.
var fieldNames = map[string][]string{
	"a/":        {"", "balance", "nonce", "multisig"},
	"r/notary/": {"", "hash", "by", "height", "time_ms", "tx"},
	"r/item/":   {"", "id", "metadata_hash", "owner", "registrar", "height", "events"},
	"r/ident/":  {"", "id", "kind", "name", "controller", "keys", "owner", "height"},
	"r/claim/":  {"", "id", "issuer", "subject", "schema", "content_hash", "issued_by", "height", "time_ms", "expires_ms", "revoked", "revoked_height"},
	"r/asset/":  {"", "symbol", "name", "decimals", "max_supply", "supply", "issuer", "height"},
	"r/escrow/": {"", "id", "depositor", "beneficiary", "asset", "amount", "arbiter", "hash_lock", "deadline", "status", "height", "closed_height", "closed_by", "preimage"},
	"r/ihist/":  {"", "seq", "event", "from", "to", "tx", "height", "time_ms"},
	"r/ballot/": {"", "id", "title", "creator", "options", "eligible", "closes", "tally", "height"},
	"r/vals/":   {"", "height", "validators", "prev"},
}

// KeyValueJSON is ValueJSON with the field names of the record kind key holds, where known.
func KeyValueJSON(key, v []byte) string {
	for p, names := range fieldNames {
		if bytes.HasPrefix(key, []byte(p)) {
			return valueJSON(names, v)
		}
	}
	return valueJSON(nil, v)
}

func valueJSON(names []string, v []byte) string {
	var x any
	if err := strictDecAny.Unmarshal(v, &x); err != nil {
		return hex.EncodeToString(v)
	}
	if m, ok := x.(map[any]any); ok && names != nil {
		named := make(map[any]any, len(m))
		for k, e := range m {
			if i, ok := k.(uint64); ok && i < uint64(len(names)) && names[i] != "" {
				named[names[i]] = e
			} else {
				named[k] = e
			}
		}
		x = named
	}
	b, err := json.Marshal(plain(x))
	if err != nil {
		return hex.EncodeToString(v)
	}
	return string(b)
}

var strictDecAny, _ = cbor.DecOptions{}.DecMode()

func plain(x any) any {
	switch v := x.(type) {
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = plain(e)
		}
		return out
	case []any:
		for i := range v {
			v[i] = plain(v[i])
		}
		return v
	case []byte:
		return hex.EncodeToString(v)
	}
	return x
}

// inBlock checks that the proof's block is the one the anchor follows (prev, of height), that
// it holds Count transactions and that Raw is its transaction Index.
func (t *TxProof) inBlock(prev merkle.Hash, height uint64) error {
	if consensus.DigestOf(t.Block) != consensus.Digest(prev) {
		return fmt.Errorf("%w: the transaction's block is not the one the anchor follows", ErrPathMismatch)
	}
	var b struct {
		Header header   `cbor:"1,keyasint"`
		Txs    [][]byte `cbor:"2,keyasint"`
	}
	if err := cbor.Unmarshal(t.Block, &b); err != nil {
		return fmt.Errorf("%w: the transaction's block: %v", ErrMalformed, err)
	}
	switch {
	case b.Header.Height != height:
		return fmt.Errorf("%w: the transaction's block is block %d, the proof is about block %d", ErrPathMismatch, b.Header.Height, height)
	case uint64(len(b.Txs)) != t.Count:
		return fmt.Errorf("%w: block %d holds %d transactions, the receipt says %d", ErrPathMismatch, height, len(b.Txs), t.Count)
	case t.Index >= t.Count || !bytes.Equal(b.Txs[t.Index], t.Raw):
		return fmt.Errorf("%w: transaction %d of block %d is not the one proven", ErrPathMismatch, t.Index, height)
	}
	return nil
}
