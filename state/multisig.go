package state

import (
	"bytes"
	"fmt"
)

// Multi-signature accounts.
//
// An account without a signer set is controlled by the key whose hash is its address: its
// transactions carry exactly that key's signature. SetSigners gives it a set of up to MaxSigners
// keys and a quorum, stored under r/sig/<address>, and sets Account.Multisig, so that the
// transfer path learns from the account it has already loaded whether it must look further.
// From then on a transaction from the account must carry signatures of at least Quorum distinct
// signatories and no other signature (a signature by a stranger is refused rather than ignored,
// so that a transaction's bytes say exactly who authorised it). The address's own key has no
// special power any more unless it is one of the signatories.
//
// Signatures are verified state-free, in batches, before this (VerifyTxs): here only membership
// and the count are checked.

// checkSigners checks tx's signatures against its multi-signature sender's set.
func (ov *overlay) checkSigners(tx *Tx) error {
	var set SignerSet
	ok, err := ov.load(keySigners(tx.Body.From), &set)
	if err != nil {
		return err
	}
	if !ok {
		ov.err = fmt.Errorf("%w: account %s is marked multi-signature but has no signer set", ErrCorrupt, tx.Body.From)
		return ov.err
	}
	return authorised(&set, tx.Sigs)
}

// authorised reports whether sigs (distinct keys, already verified) satisfy set.
func authorised(set *SignerSet, sigs []Signature) error {
	for _, s := range sigs {
		found := false
		for _, k := range set.Signers {
			if bytes.Equal(k, s.PubKey) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%w: a signature is not by a signatory", ErrNotAuthorized)
		}
	}
	if uint32(len(sigs)) < set.Quorum {
		return fmt.Errorf("%w: %d signatories signed, quorum is %d", ErrNotAuthorized, len(sigs), set.Quorum)
	}
	return nil
}

func checkSetSigners(op *SetSigners) error {
	if len(op.Signers) == 0 {
		if op.Quorum != 0 {
			return fmt.Errorf("%w: a quorum without signatories", ErrBadSigners)
		}
		return nil
	}
	if len(op.Signers) > MaxSigners {
		return fmt.Errorf("%w: %d signatories, limit %d", ErrBadSigners, len(op.Signers), MaxSigners)
	}
	for _, k := range op.Signers {
		if !validPubKey(k) {
			return fmt.Errorf("%w: not a usable ed25519 public key", ErrBadSigners)
		}
	}
	if !distinctKeys(op.Signers) {
		return fmt.Errorf("%w: a signatory appears twice", ErrBadSigners)
	}
	if op.Quorum == 0 || int(op.Quorum) > len(op.Signers) {
		return fmt.Errorf("%w: quorum %d of %d signatories", ErrBadSigners, op.Quorum, len(op.Signers))
	}
	return nil
}

func (ov *overlay) setSigners(from Address, op *SetSigners) error {
	if err := checkSetSigners(op); err != nil {
		return err
	}
	i, err := ov.account(from)
	if err != nil {
		return err
	}
	if len(op.Signers) == 0 {
		ov.touch(i).Multisig = false
		return ov.del(keySigners(from))
	}
	ov.touch(i).Multisig = true
	return ov.store(keySigners(from), &SignerSet{Signers: op.Signers, Quorum: op.Quorum})
}
