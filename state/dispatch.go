package state

import (
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"
)

// BlockInfo is what a block tells the state machine besides its transactions: its height, its
// header's time (unix milliseconds, the proposer's clock as the validators accepted it) and its
// header's protocol version (0 reads as InitialVersion; see upgrade.go). Records carry the time
// (notary anchors, item history, claims), and claims expire by it; rules that differ between
// protocol versions follow Version.
type BlockInfo struct {
	Height  uint64
	TimeMs  int64
	Version uint32
}

// applyTx applies one admitted transaction: authorisation, nonce, then its operation. selfSigned
// says that the transaction carries exactly one signature, by the key whose hash is the sender's
// address (computed, state-free, while admitting the block). A rejection changes nothing.
func (ov *overlay) applyTx(tx *Tx, selfSigned bool) error {
	b := &tx.Body
	si := ov.indexOf(b.From)
	sender := &ov.accts[si].acct
	if !sender.Multisig {
		if !selfSigned {
			return fmt.Errorf("%w: the signer's key is not the sender's", ErrNotAuthorized)
		}
	} else if err := ov.checkSigners(tx); err != nil {
		return err
	}
	switch {
	case b.Nonce != sender.Nonce:
		if b.Nonce < sender.Nonce {
			return fmt.Errorf("%w: nonce %d already used (next is %d)", ErrBadNonce, b.Nonce, sender.Nonce)
		}
		return fmt.Errorf("%w: nonce %d, next is %d", ErrNonceAhead, b.Nonce, sender.Nonce)
	case sender.Nonce == math.MaxUint64:
		return errNonceExhausted
	}
	if b.Transfer != nil {
		return ov.applyTransfer(si, b.From, b.Transfer)
	}
	mark := len(ov.journal)
	if err := ov.applyOp(tx); err != nil {
		ov.rollback(mark)
		return err
	}
	ov.touch(si).Nonce++
	// The journal is only needed while one transaction may still be rejected.
	ov.journal = ov.journal[:0]
	return nil
}

// applyOp runs the operation of a non-transfer transaction. On error the caller rolls back.
func (ov *overlay) applyOp(tx *Tx) error {
	b := &tx.Body
	from := b.From
	switch {
	case b.SetSigners != nil:
		return ov.setSigners(from, b.SetSigners)
	case b.AssetCreate != nil:
		return ov.assetCreate(from, b.AssetCreate)
	case b.AssetMint != nil:
		return ov.assetMint(from, b.AssetMint)
	case b.AssetBurn != nil:
		return ov.assetBurn(from, b.AssetBurn)
	case b.AssetTransfer != nil:
		return ov.assetTransfer(from, b.AssetTransfer)
	case b.ItemRegister != nil:
		return ov.itemRegister(from, b.ItemRegister)
	case b.ItemTransfer != nil:
		return ov.itemTransfer(from, b.ItemTransfer)
	case b.NotaryAnchor != nil:
		return ov.notaryAnchor(from, b.NotaryAnchor)
	case b.EscrowCreate != nil:
		return ov.escrowCreate(from, b.EscrowCreate)
	case b.EscrowRelease != nil:
		return ov.escrowRelease(from, b.EscrowRelease)
	case b.EscrowRefund != nil:
		return ov.escrowRefund(from, b.EscrowRefund)
	case b.IdentityRegister != nil:
		return ov.identityRegister(from, b.IdentityRegister)
	case b.ClaimIssue != nil:
		return ov.claimIssue(from, b.ClaimIssue)
	case b.ClaimRevoke != nil:
		return ov.claimRevoke(from, b.ClaimRevoke)
	case b.BallotCreate != nil:
		return ov.ballotCreate(from, b.BallotCreate)
	case b.BallotVote != nil:
		return ov.ballotVote(from, b.BallotVote)
	case b.GovPropose != nil:
		return ov.govPropose(from, b.GovPropose)
	case b.GovVote != nil:
		return ov.govVote(from, b.GovVote)
	case b.EncryptionKeySet != nil:
		return ov.encryptionKeySet(from, b.EncryptionKeySet)
	case b.PrivateSend != nil:
		return ov.privateSend(from, b.PrivateSend)
	case b.PrivateEscrowCreate != nil:
		return ov.privateEscrowCreate(from, b.PrivateEscrowCreate)
	case b.PrivateEscrowClose != nil:
		return ov.privateEscrowClose(from, b.PrivateEscrowClose)
	case b.PrivateClaimIssue != nil:
		return ov.privateClaimIssue(from, b.PrivateClaimIssue)
	}
	return ErrNoOperation
}

// Native-currency moves for operations other than Transfer (escrow), journalled.

func (ov *overlay) debitNative(a Address, amount uint64) error {
	i, err := ov.account(a)
	if err != nil {
		return err
	}
	if bal := ov.accts[i].acct.Balance; bal < amount {
		return fmt.Errorf("%w: balance %d, amount %d", ErrNoFunds, bal, amount)
	}
	ov.touch(i).Balance -= amount
	return nil
}

func (ov *overlay) creditNative(a Address, amount uint64) error {
	i, err := ov.account(a)
	if err != nil {
		return err
	}
	if bal := ov.accts[i].acct.Balance; bal > math.MaxUint64-amount {
		return fmt.Errorf("%w: balance %d, amount %d", ErrOverflow, bal, amount)
	}
	ov.touch(i).Balance += amount
	return nil
}

// ValidID reports whether s is an ID: 1..MaxIDLen of A-Z a-z 0-9 . _ : -
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

func checkID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %q", ErrBadID, id)
	}
	return nil
}

// validName reports whether s is 1..MaxNameLen bytes of printable UTF-8.
func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// ValidSymbol reports whether s is an asset symbol: 2..12 of A-Z 0-9.
func ValidSymbol(s string) bool {
	if len(s) < 2 || len(s) > 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validPubKey reports whether k can be an ed25519 public key anyone could sign with.
func validPubKey(k []byte) bool {
	return len(k) == 32 && !smallOrderKeys[[32]byte(k)]
}

// distinctKeys reports whether keys holds no key twice.
func distinctKeys(keys [][]byte) bool {
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[string(k)] {
			return false
		}
		seen[string(k)] = true
	}
	return true
}
