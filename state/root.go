package state

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// The state root.
//
// The root is the root of the state tree: a compact sparse Merkle tree over every state entry,
// the "a/" accounts and the "r/" records (assets and balances, items and their history,
// identities, claims, notary anchors, escrows, ballots and votes, governance and validator
// sets), never the "m/" bookkeeping nor the tree's own "t/" nodes. Package merkle specifies its
// hashing and checks its proofs; tree.go keeps it in the store. The root is a function of the
// state alone (not of the height or the order of writes), so two nodes with the same root hold
// the same entries, and one entry's value, or its absence, is proven by a path of about
// log2(entries) hashes (State.Prove).
//
// Each block changes the tree once: its write set, sorted by key hash, is applied in one pass
// that rewrites every changed path once, and the new nodes go into the block's batch.
// writeSet is the state entries a block changes, with their final values.
type writeSet struct {
	entries []writeEntry
	arena   []byte // backing store for keys and values, so a block allocates a few buffers, not thousands
}

type writeEntry struct {
	key, value []byte
	deleted    bool
}

func newWriteSet(n int) *writeSet {
	return &writeSet{
		entries: make([]writeEntry, 0, n),
		arena:   make([]byte, 0, n*(len(accountPrefix)+AddressLen+maxAccountBytes)),
	}
}

// setAccount records a's final value.
func (ws *writeSet) setAccount(a Address, acct Account) {
	k := accountKey(a)
	start := len(ws.arena)
	ws.arena = append(ws.arena, k[:]...)
	mid := len(ws.arena)
	ws.arena = appendAccount(ws.arena, acct)
	// If append moved the arena, earlier entries still point into the old buffer, which stays
	// alive and unchanged: that is fine.
	ws.entries = append(ws.entries, writeEntry{
		key:   ws.arena[start:mid:mid],
		value: ws.arena[mid:len(ws.arena):len(ws.arena)],
	})
}

// Account values are the deterministic CBOR of Account (a map {1: Balance, 2: Nonce}, with 3: true
// for a multi-signature account). Accounts are read and written for every transfer, so they have
// a hand-written codec that produces and accepts exactly the bytes Marshal produces (the tests
// check this against Marshal and Unmarshal).
const maxAccountBytes = 1 + 2*(1+9) + 2

var errAccountEncoding = errors.New("account is not in canonical encoding")

func appendAccount(dst []byte, a Account) []byte {
	if a.Multisig {
		dst = append(dst, 0xa3, 0x01)
	} else {
		dst = append(dst, 0xa2, 0x01)
	}
	dst = appendCBORUint(dst, a.Balance)
	dst = append(dst, 0x02)
	dst = appendCBORUint(dst, a.Nonce)
	if a.Multisig {
		dst = append(dst, 0x03, 0xf5)
	}
	return dst
}

// appendCBORUint appends v as a CBOR major-type-0 integer in its shortest form (RFC 8949 §4.2.1).
func appendCBORUint(dst []byte, v uint64) []byte {
	switch {
	case v < 24:
		return append(dst, byte(v))
	case v <= 0xff:
		return append(dst, 0x18, byte(v))
	case v <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, 0x19), uint16(v))
	case v <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(dst, 0x1a), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 0x1b), v)
	}
}

// readCBORUint reads a major-type-0 integer from the start of b, returning it and its length.
func readCBORUint(b []byte) (uint64, int, bool) {
	if len(b) == 0 || b[0]>>5 != 0 {
		return 0, 0, false
	}
	switch ai := b[0] & 0x1f; {
	case ai < 24:
		return uint64(ai), 1, true
	case ai == 24 && len(b) >= 2:
		return uint64(b[1]), 2, true
	case ai == 25 && len(b) >= 3:
		return uint64(binary.BigEndian.Uint16(b[1:])), 3, true
	case ai == 26 && len(b) >= 5:
		return uint64(binary.BigEndian.Uint32(b[1:])), 5, true
	case ai == 27 && len(b) >= 9:
		return binary.BigEndian.Uint64(b[1:]), 9, true
	}
	return 0, 0, false
}

// decodeAccount is the inverse of appendAccount and accepts nothing else.
func decodeAccount(b []byte) (Account, error) {
	var a Account
	if len(b) < 5 || (b[0] != 0xa2 && b[0] != 0xa3) || b[1] != 0x01 {
		return a, errAccountEncoding
	}
	multisig := b[0] == 0xa3
	bal, n, ok := readCBORUint(b[2:])
	if !ok {
		return a, errAccountEncoding
	}
	rest := b[2+n:]
	if len(rest) < 2 || rest[0] != 0x02 {
		return a, errAccountEncoding
	}
	nonce, m, ok := readCBORUint(rest[1:])
	tail := 0
	if multisig {
		tail = 2
	}
	if !ok || 1+m+tail != len(rest) {
		return a, errAccountEncoding
	}
	a = Account{Balance: bal, Nonce: nonce, Multisig: multisig}
	// Reject longer-than-needed integers and anything else: one account, one encoding.
	var buf [maxAccountBytes]byte
	if !bytes.Equal(appendAccount(buf[:0], a), b) {
		return Account{}, errAccountEncoding
	}
	return a, nil
}
