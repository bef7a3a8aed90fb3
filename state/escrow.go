package state

import (
	"bytes"
	"crypto/sha256"
	"fmt"
)

// Escrow. The locked amount leaves the depositor's balance when the escrow is created and is
// held by the escrow record itself until it is released or refunded, exactly once: an escrow's
// Status goes from open to released or to refunded and never back. The deadline is a height:
// release is possible in blocks below it, refund in blocks at or above it, so the two never
// overlap. Supply accounting counts open escrows' amounts as held (see asset.go).

func (ov *overlay) escrow(id string) (*Escrow, error) {
	var e Escrow
	ok, err := ov.load(keyEscrow(id), &e)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: escrow %q", ErrUnknown, id)
	}
	return &e, nil
}

func (ov *overlay) escrowCreate(from Address, op *EscrowCreate) error {
	if err := checkID(op.ID); err != nil {
		return err
	}
	if ok, err := ov.exists(keyEscrow(op.ID)); err != nil || ok {
		return existsErr(err, "escrow "+op.ID)
	}
	switch {
	case op.Arbiter == nil && op.HashLock == nil:
		return fmt.Errorf("%w: an escrow needs an arbiter or a hash-lock", ErrBadField)
	case op.Beneficiary == from:
		return ErrSelfTransfer
	case op.Deadline <= ov.blk.Height:
		return fmt.Errorf("%w: deadline %d is not after block %d", ErrBadHeight, op.Deadline, ov.blk.Height)
	case op.Amount == 0:
		return ErrBadAmount
	}
	if op.Asset == "" {
		if err := ov.debitNative(from, op.Amount); err != nil {
			return err
		}
	} else {
		if _, err := ov.asset(op.Asset); err != nil {
			return err
		}
		if err := ov.debitAsset(from, op.Asset, op.Amount); err != nil {
			return err
		}
	}
	return ov.store(keyEscrow(op.ID), &Escrow{ID: op.ID, Depositor: from, Beneficiary: op.Beneficiary,
		Asset: op.Asset, Amount: op.Amount, Arbiter: op.Arbiter, HashLock: op.HashLock,
		Deadline: op.Deadline, Status: EscrowOpen, Height: ov.blk.Height})
}

func (ov *overlay) payOut(e *Escrow, to Address) error {
	if e.Asset == "" {
		return ov.creditNative(to, e.Amount)
	}
	return ov.creditAsset(to, e.Asset, e.Amount)
}

func (ov *overlay) escrowRelease(from Address, op *EscrowRelease) error {
	e, err := ov.escrow(op.ID)
	if err != nil {
		return err
	}
	switch {
	case e.Status != EscrowOpen:
		return fmt.Errorf("%w: escrow %q is %s", ErrEscrowClosed, op.ID, e.Status)
	case ov.blk.Height >= e.Deadline:
		return fmt.Errorf("%w: deadline %d, block %d", ErrEscrowExpired, e.Deadline, ov.blk.Height)
	}
	if e.Arbiter == nil || *e.Arbiter != from {
		// Not the arbiter: only the preimage can release it.
		switch {
		case op.Preimage == nil:
			return ErrNotArbiter
		case e.HashLock == nil:
			return fmt.Errorf("%w: escrow %q has no hash-lock", ErrBadPreimage, op.ID)
		}
		sum := sha256.Sum256(op.Preimage)
		if !bytes.Equal(sum[:], e.HashLock[:]) {
			return ErrBadPreimage
		}
		e.Preimage = op.Preimage
	}
	if err := ov.payOut(e, e.Beneficiary); err != nil {
		return err
	}
	e.Status, e.ClosedAt, e.ClosedBy = EscrowReleased, ov.blk.Height, &from
	return ov.store(keyEscrow(op.ID), e)
}

func (ov *overlay) escrowRefund(from Address, op *EscrowRefund) error {
	e, err := ov.escrow(op.ID)
	if err != nil {
		return err
	}
	switch {
	case e.Status != EscrowOpen:
		return fmt.Errorf("%w: escrow %q is %s", ErrEscrowClosed, op.ID, e.Status)
	case from != e.Depositor:
		return ErrNotDepositor
	case ov.blk.Height < e.Deadline:
		return fmt.Errorf("%w: deadline %d, block %d", ErrEscrowNotExpired, e.Deadline, ov.blk.Height)
	}
	if err := ov.payOut(e, e.Depositor); err != nil {
		return err
	}
	e.Status, e.ClosedAt, e.ClosedBy = EscrowRefunded, ov.blk.Height, &from
	return ov.store(keyEscrow(op.ID), e)
}
