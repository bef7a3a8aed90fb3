package state

import (
	"errors"
	"fmt"

	"github.com/guild-ledger/guild/state/merkle"
)

// ErrUnknownKind: a proof was asked for a kind of record that has no key.
var ErrUnknownKind = errors.New("state: unknown kind of record")

// Prove returns the proof of key's value, or of its absence, against root: the root after the
// last applied block (Root) or any earlier one the tree was not pruned past (see ProveAt). The
// value comes from the tree itself, so a proof at a past root shows the value the key had then.
func (s *State) Prove(root Hash, key []byte) (*merkle.StateProof, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: empty key", ErrBadField)
	}
	return s.tree.prove(root, key)
}

// Proof kinds: the records a proof can be asked for by name, with the arguments their key takes.
const (
	KindAccount    = "account"    // address
	KindBalance    = "balance"    // address, asset symbol
	KindAsset      = "asset"      // symbol
	KindItem       = "item"       // item ID
	KindItemEvent  = "item-event" // item ID, sequence number
	KindIdentity   = "identity"   // identity ID
	KindClaim      = "claim"      // claim ID
	KindNotary     = "notary"     // document hash (hex)
	KindEscrow     = "escrow"     // escrow ID
	KindBallot     = "ballot"     // ballot ID
	KindProposal   = "proposal"   // proposal ID
	KindGovernance = "governance" // no argument
	KindValidators = "validators" // effective height
	KindSigners    = "signers"    // address
)

// ProofKinds lists the kinds StateKey knows, with their number of arguments.
func ProofKinds() map[string]int {
	return map[string]int{KindAccount: 1, KindBalance: 2, KindAsset: 1, KindItem: 1, KindItemEvent: 2,
		KindIdentity: 1, KindClaim: 1, KindNotary: 1, KindEscrow: 1, KindBallot: 1, KindProposal: 1,
		KindGovernance: 0, KindValidators: 1, KindSigners: 1}
}

// StateKey is the store key of a record named by kind and its arguments as text (addresses and
// hashes in hex, numbers in decimal).
func StateKey(kind string, args ...string) ([]byte, error) {
	n, ok := ProofKinds()[kind]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	if len(args) != n {
		return nil, fmt.Errorf("%w: %s takes %d arguments, got %d", ErrBadField, kind, n, len(args))
	}
	addr := func(s string) (Address, error) {
		a, err := ParseAddress(s)
		if err != nil {
			return a, fmt.Errorf("%w: address %q: %v", ErrBadField, s, err)
		}
		return a, nil
	}
	num := func(s string) (uint64, error) {
		var v uint64
		if _, err := fmt.Sscan(s, &v); err != nil {
			return 0, fmt.Errorf("%w: number %q", ErrBadField, s)
		}
		return v, nil
	}
	switch kind {
	case KindAccount:
		a, err := addr(args[0])
		if err != nil {
			return nil, err
		}
		k := accountKey(a)
		return k[:], nil
	case KindBalance:
		a, err := addr(args[0])
		if err != nil {
			return nil, err
		}
		return []byte(keyBalance(a, args[1])), nil
	case KindAsset:
		return []byte(keyAsset(args[0])), nil
	case KindItem:
		return []byte(keyItem(args[0])), nil
	case KindItemEvent:
		seq, err := num(args[1])
		if err != nil {
			return nil, err
		}
		return []byte(keyItemEvent(args[0], seq)), nil
	case KindIdentity:
		return []byte(keyIdentity(args[0])), nil
	case KindClaim:
		return []byte(keyClaim(args[0])), nil
	case KindNotary:
		var h Hash
		if err := h.UnmarshalText([]byte(args[0])); err != nil {
			return nil, fmt.Errorf("%w: hash %q: %v", ErrBadField, args[0], err)
		}
		return []byte(keyNotary(h)), nil
	case KindEscrow:
		return []byte(keyEscrow(args[0])), nil
	case KindBallot:
		return []byte(keyBallot(args[0])), nil
	case KindProposal:
		return []byte(keyProposal(args[0])), nil
	case KindGovernance:
		return []byte(keyGov), nil
	case KindValidators:
		h, err := num(args[0])
		if err != nil {
			return nil, err
		}
		return []byte(keyValidators(h)), nil
	case KindSigners:
		a, err := addr(args[0])
		if err != nil {
			return nil, err
		}
		return []byte(keySigners(a)), nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
}

// GovValidatorHeight decodes the r/gov record's LastValidatorHeight: the effective height of the
// latest validator set scheduled, which a light client follows.
func GovValidatorHeight(raw []byte) (uint64, error) {
	var g govState
	if err := Unmarshal(raw, &g); err != nil {
		return 0, fmt.Errorf("%w: governance record: %v", ErrCorrupt, err)
	}
	return g.LastValidatorHeight, nil
}
