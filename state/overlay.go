package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Store keys of the records other than accounts. All are under "r/", so they sort after the
// accounts' "a/" keys and every one is in the block's write set, hence in the state root.
//
//	r/sig/<address>              CBOR(SignerSet)
//	r/asset/<symbol>             CBOR(Asset)
//	r/bal/<address><symbol>      CBOR(uint64), absent when zero
//	r/item/<id>                  CBOR(Item)
//	r/ihist/<id>\x00<seq be64>   CBOR(ItemEvent)
//	r/ident/<id>                 CBOR(Identity)
//	r/claim/<id>                 CBOR(Claim)
//	r/notary/<32-byte hash>      CBOR(NotaryRecord)
//	r/escrow/<id>                CBOR(Escrow)
//	r/ballot/<id>                CBOR(Ballot)
//	r/vote/<ballot>\x00<identity> CBOR(uint32 option)
//	r/prop/<id>                  CBOR(Proposal)
//	r/gov                        CBOR(govState)
//	r/vals/<height be64>         CBOR(ValidatorSetAt), the set from that height on
//	r/enck/<owner>               CBOR(EncryptionKey), owner "member:<name>" or "identity:<id>"
//	r/priv/<32-byte commitment>  CBOR(PrivateRecord)
//	r/pescrow/<id>               CBOR(PrivateEscrow)
//
// IDs never contain 0x00 (see validID), so the composite keys are unambiguous.
const recordPrefix = "r/"

func recKey(kind string, parts ...[]byte) string {
	n := len(recordPrefix) + len(kind) + 1
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, recordPrefix...)
	b = append(b, kind...)
	b = append(b, '/')
	for _, p := range parts {
		b = append(b, p...)
	}
	return string(b)
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

var sep = []byte{0}

func keySigners(a Address) string             { return recKey("sig", a[:]) }
func keyAsset(sym string) string              { return recKey("asset", []byte(sym)) }
func keyBalance(a Address, sym string) string { return recKey("bal", a[:], []byte(sym)) }
func keyItem(id string) string                { return recKey("item", []byte(id)) }
func keyItemEvent(id string, seq uint64) string {
	return recKey("ihist", []byte(id), sep, be64(seq))
}
func keyIdentity(id string) string { return recKey("ident", []byte(id)) }
func keyClaim(id string) string    { return recKey("claim", []byte(id)) }
func keyNotary(h Hash) string      { return recKey("notary", h[:]) }
func keyEscrow(id string) string   { return recKey("escrow", []byte(id)) }
func keyBallot(id string) string   { return recKey("ballot", []byte(id)) }
func keyVote(ballot, identity string) string {
	return recKey("vote", []byte(ballot), sep, []byte(identity))
}
func keyProposal(id string) string  { return recKey("prop", []byte(id)) }
func keyValidators(h uint64) string { return recKey("vals", be64(h)) }

const keyGov = recordPrefix + "gov"

// record is one non-account state entry as a block sees it: read through from the store on first
// use, then changed in memory until the block commits.
type record struct {
	val     []byte // nil: absent
	orig    []byte // the committed value, to leave unchanged entries out of the write set
	changed bool
}

// undo is one journal entry: what to restore if the transaction being applied is rejected.
type undo struct {
	key     string // a record's key, or "" for an account
	rec     record
	acct    int32
	oldAcct overlayAccount
}

// get returns the value of key as the block has it so far (nil when absent).
func (ov *overlay) get(key string) ([]byte, error) {
	if r, ok := ov.recs[key]; ok {
		return r.val, nil
	}
	v, err := ov.s.db.Get([]byte(key))
	if err != nil {
		// Not the transaction's fault: ApplyBlock sees ov.err and fails the whole block.
		ov.err = fmt.Errorf("state: reading %q: %w", key, err)
		return nil, ov.err
	}
	ov.recs[key] = &record{val: v, orig: v}
	return v, nil
}

// load decodes key's value into v and reports whether it exists.
func (ov *overlay) load(key string, v any) (bool, error) {
	b, err := ov.get(key)
	if err != nil || b == nil {
		return false, err
	}
	if err := Unmarshal(b, v); err != nil {
		ov.err = fmt.Errorf("%w: %q: %v", ErrCorrupt, key, err)
		return false, ov.err
	}
	return true, nil
}

// exists reports whether key has a value.
func (ov *overlay) exists(key string) (bool, error) {
	b, err := ov.get(key)
	return b != nil, err
}

// set stores val (nil deletes) under key, journalled.
func (ov *overlay) set(key string, val []byte) error {
	if _, err := ov.get(key); err != nil {
		return err
	}
	r := ov.recs[key]
	ov.journal = append(ov.journal, undo{key: key, rec: *r})
	r.val, r.changed = val, true
	return nil
}

// store encodes v under key.
func (ov *overlay) store(key string, v any) error {
	b, err := Marshal(v)
	if err != nil {
		ov.err = fmt.Errorf("state: encoding %q: %w", key, err)
		return ov.err
	}
	return ov.set(key, b)
}

func (ov *overlay) del(key string) error { return ov.set(key, nil) }

// account returns the overlay index of a's account, loading it if this block has not yet touched
// it. The transfer path never needs this: prefetch has loaded its accounts.
func (ov *overlay) account(a Address) (int32, error) {
	if i, ok := ov.index[a]; ok {
		return i, nil
	}
	acct, ok := ov.s.cache.get(a)
	if !ok {
		var err error
		acct, err = ov.s.loadAccount(a)
		if err != nil && !errors.Is(err, errAccountNotFound) {
			ov.err = err
			return 0, err
		}
	}
	i := int32(len(ov.accts))
	ov.index[a] = i
	ov.accts = append(ov.accts, overlayAccount{addr: a, acct: acct})
	return i, nil
}

// touch journals account i before a change and marks it dirty.
func (ov *overlay) touch(i int32) *Account {
	ov.journal = append(ov.journal, undo{acct: i, oldAcct: ov.accts[i]})
	e := &ov.accts[i]
	e.dirty = true
	return &e.acct
}

// rollback undoes every journalled change back to mark, newest first.
func (ov *overlay) rollback(mark int) {
	for j := len(ov.journal) - 1; j >= mark; j-- {
		u := &ov.journal[j]
		if u.key == "" {
			ov.accts[u.acct] = u.oldAcct
			continue
		}
		*ov.recs[u.key] = u.rec
	}
	ov.journal = ov.journal[:mark]
}

// recordWrites appends the records the block changed, in key order, to ws. Records sort after
// accounts ("r/" > "a/"), so ws stays sorted.
func (ov *overlay) recordWrites(ws *writeSet) {
	keys := make([]string, 0, len(ov.recs))
	for k, r := range ov.recs {
		if r.changed && !bytes.Equal(r.val, r.orig) || r.changed && (r.val == nil) != (r.orig == nil) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		r := ov.recs[k]
		ws.entries = append(ws.entries, writeEntry{key: []byte(k), value: r.val, deleted: r.val == nil})
	}
}
