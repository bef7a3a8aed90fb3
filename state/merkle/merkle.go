// Package merkle is the hashing of Guild's state tree and receipts, and the checking of proofs
// against their roots. It is pure (SHA-256 and nothing else: no store, no network), so that a
// light client can import it and check a proof with no node.
//
// # The state tree
//
// The state root is the root of a sparse Merkle tree of 256 levels keyed by SHA-256(key), over
// every state entry (key, value). It is compact: a subtree that holds one entry is that entry's
// leaf, placed at the first level where no other key shares its path, and an empty subtree is
// the zero hash. Then the tree of a set of entries is unique, whatever order they were written
// in, and a path is about log2(entries) long.
//
//	kh         = SHA-256(key)
//	leaf       = SHA-256(0x00 ‖ kh ‖ SHA-256(value))
//	internal   = SHA-256(0x01 ‖ left ‖ right)      left: the child whose next path bit is 0
//	empty      = 32 zero bytes
//
// Bit i of a path is bit (7 - i%8) of byte i/8 of kh: most significant first. An internal node
// with one empty child and a leaf for the other never occurs (the leaf moves up in its place).
//
// A proof of a key lists the siblings from the root down to where the key's path ends: at its
// leaf (inclusion), at an empty subtree, or at another key's leaf (non-inclusion).
package merkle

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Hash is a SHA-256 digest.
type Hash = [32]byte

// MaxDepth is the tree's height: no path is longer.
const MaxDepth = 256

var (
	// ErrPathMismatch: the proof does not lead to the root it was checked against.
	ErrPathMismatch = errors.New("merkle: proof does not match the root")
	// ErrMalformed: the proof is not well-formed (too long, contradictory).
	ErrMalformed = errors.New("merkle: malformed proof")
)

// KeyHash is a key's path in the state tree.
func KeyHash(key []byte) Hash { return sha256.Sum256(key) }

// LeafHash is the hash of the leaf of a key (by its path) holding a value (by its hash).
func LeafHash(kh, vh Hash) Hash {
	var buf [65]byte
	buf[0] = 0
	copy(buf[1:], kh[:])
	copy(buf[33:], vh[:])
	return sha256.Sum256(buf[:])
}

// InternalHash is the hash of an internal node.
func InternalHash(left, right Hash) Hash {
	var buf [65]byte
	buf[0] = 1
	copy(buf[1:], left[:])
	copy(buf[33:], right[:])
	return sha256.Sum256(buf[:])
}

// Bit is bit i of a path (0 or 1).
func Bit(kh *Hash, i int) int { return int(kh[i>>3]>>(7-uint(i&7))) & 1 }

// StateProof proves the value of Key, or its absence, against a state root.
//
// Siblings run from the root down. Present with Value: the key's leaf ends the path. Absent:
// the path ends at an empty subtree, or, when OtherKeyHash is set, at the leaf of another key
// (OtherKeyHash, OtherValueHash) whose path shares those first bits.
type StateProof struct {
	Key            []byte `json:"key"`
	Present        bool   `json:"present"`
	Value          []byte `json:"value,omitempty"`
	Siblings       []Hash `json:"-"`
	OtherKeyHash   *Hash  `json:"-"`
	OtherValueHash *Hash  `json:"-"`
}

// Root computes the root that the proof leads to. It fails only on a malformed proof.
func (p *StateProof) Root() (Hash, error) {
	var zero Hash
	if len(p.Siblings) > MaxDepth {
		return zero, fmt.Errorf("%w: %d siblings, at most %d", ErrMalformed, len(p.Siblings), MaxDepth)
	}
	if !p.Present && len(p.Value) != 0 {
		return zero, fmt.Errorf("%w: a value for an absent key", ErrMalformed)
	}
	if (p.OtherKeyHash == nil) != (p.OtherValueHash == nil) {
		return zero, fmt.Errorf("%w: half of another key's leaf", ErrMalformed)
	}
	kh := KeyHash(p.Key)
	var h Hash
	switch {
	case p.Present:
		if p.OtherKeyHash != nil {
			return zero, fmt.Errorf("%w: another key's leaf in an inclusion proof", ErrMalformed)
		}
		h = LeafHash(kh, sha256.Sum256(p.Value))
	case p.OtherKeyHash != nil:
		okh := *p.OtherKeyHash
		if okh == kh {
			return zero, fmt.Errorf("%w: the other leaf is the key's own", ErrMalformed)
		}
		for i := range p.Siblings {
			if Bit(&okh, i) != Bit(&kh, i) {
				return zero, fmt.Errorf("%w: the other leaf is off the key's path", ErrMalformed)
			}
		}
		h = LeafHash(okh, *p.OtherValueHash)
	}
	for i := len(p.Siblings) - 1; i >= 0; i-- {
		if Bit(&kh, i) == 0 {
			h = InternalHash(h, p.Siblings[i])
		} else {
			h = InternalHash(p.Siblings[i], h)
		}
	}
	return h, nil
}

// Verify checks the proof against root.
func (p *StateProof) Verify(root Hash) error {
	got, err := p.Root()
	if err != nil {
		return err
	}
	if !bytes.Equal(got[:], root[:]) {
		return fmt.Errorf("%w: it leads to %x, the root is %x", ErrPathMismatch, got, root)
	}
	return nil
}
