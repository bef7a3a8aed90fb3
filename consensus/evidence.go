package consensus

import (
	"bytes"
	"errors"
	"fmt"
)

// Evidence of equivocation (issue #3): two messages signed by one validator for one (height,
// view, type) with different digests. An honest validator never signs both (signOnce), so the
// pair alone proves its signer misbehaved, to anyone holding the validator set, offline.

// MaxEvidenceBytes bounds an encoded Evidence. Two stripped messages take about 320 bytes.
const MaxEvidenceBytes = 512

// maxPendingEvidence bounds the evidence the core holds for the node between Advances, and
// maxEvidenceSeen the slots it remembers having reported at the heights it has not decided. A
// Byzantine validator can equivocate in at most one slot per (height, view, type), and the core
// only listens to a window of heights and views, so the bounds are reached only by a node that
// never drains its Ready; past them new evidence is dropped, never memory grown.
const (
	maxPendingEvidence = 1024
	maxEvidenceSeen    = 4096
)

var (
	// ErrInvalidEvidence is wrapped by every error of Evidence.Verify and DecodeEvidence, beside
	// the error that says what is wrong (ErrMalformed, ErrTooLarge, ErrBadSignature,
	// ErrUnknownValidator, ErrEvidenceSigners, ErrEvidenceSlot, ErrEvidenceNoConflict).
	ErrInvalidEvidence = errors.New("consensus: invalid evidence")
	// ErrEvidenceSigners: the two messages name different validators.
	ErrEvidenceSigners = errors.New("consensus: evidence messages from different validators")
	// ErrEvidenceSlot: the two messages are for different heights, views or message types.
	ErrEvidenceSlot = errors.New("consensus: evidence messages for different slots")
	// ErrEvidenceNoConflict: the two messages sign the same digest, which is no equivocation.
	ErrEvidenceNoConflict = errors.New("consensus: evidence messages do not conflict")
)

// Evidence is a pair of conflicting signed messages from one validator for one slot. In canonical
// form (what NewEvidence returns and DecodeEvidence accepts) each message keeps only what its
// signature covers plus the signature — Value, Certificate, Prepared, ViewChanges and Proposal
// are stripped — and First has the lower digest, so every node that catches the same pair holds
// the same bytes and the same ID. It encodes as a two-element CBOR array, which never starts like
// an encoded Message (a map): a receiver can tell the two apart by the first byte.
type Evidence struct {
	_      struct{} `cbor:",toarray"`
	First  Message
	Second Message
}

// EvidenceSlot names the slot an Evidence is about. A validator that equivocates in a slot is
// on record once: different pairs for one slot (three digests, or re-signed messages) are the
// same offence.
type EvidenceSlot struct {
	Height    uint64
	View      uint64
	Type      MsgType
	Validator uint32
}

// NewEvidence pairs two messages in canonical form. It does not check them: call Verify.
func NewEvidence(a, b Message) Evidence {
	a, b = stripForEvidence(a), stripForEvidence(b)
	if bytes.Compare(b.Digest[:], a.Digest[:]) < 0 {
		a, b = b, a
	}
	return Evidence{First: a, Second: b}
}

// stripForEvidence keeps what a message's signature covers, and the signature.
func stripForEvidence(m Message) Message {
	out := Message{Type: m.Type, Height: m.Height, View: m.View, From: m.From, Digest: m.Digest, Sig: m.Sig}
	if m.Type == MsgViewChange {
		out.PreparedView = m.PreparedView
	}
	return out
}

// Slot is the slot the evidence is about (that of First).
func (e *Evidence) Slot() EvidenceSlot {
	return EvidenceSlot{Height: e.First.Height, View: e.First.View, Type: e.First.Type, Validator: e.First.From}
}

// Encode gives the canonical bytes of e, at most MaxEvidenceBytes for evidence that Verify
// accepts.
func (e *Evidence) Encode() ([]byte, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: %w: nil evidence", ErrInvalidEvidence, ErrMalformed)
	}
	b, err := encMode.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("consensus: encode evidence: %w", err)
	}
	return b, nil
}

// ID is the SHA-256 of e's encoding: stable across nodes for canonical evidence.
func (e *Evidence) ID() Digest {
	b, err := e.Encode()
	if err != nil {
		// Integers, byte strings and a fixed array always encode.
		panic(fmt.Sprintf("consensus: encoding evidence failed, which is a bug: %v", err))
	}
	return DigestOf(b)
}

// DecodeEvidence decodes one Evidence of at most MaxEvidenceBytes, with the same limits as
// DecodeMessage, and accepts only the canonical encoding of canonical evidence, so that one
// offence has one byte string and one ID. It checks form only: call Verify before trusting it.
func DecodeEvidence(b []byte) (*Evidence, error) {
	if len(b) > MaxEvidenceBytes {
		return nil, fmt.Errorf("%w: %w: %d bytes, at most %d", ErrInvalidEvidence, ErrTooLarge, len(b), MaxEvidenceBytes)
	}
	var e Evidence
	rest, err := decMode.UnmarshalFirst(b, &e)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %v", ErrInvalidEvidence, ErrMalformed, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %w: %d trailing bytes", ErrInvalidEvidence, ErrMalformed, len(rest))
	}
	if err := e.checkCanonical(); err != nil {
		return nil, err
	}
	again, err := e.Encode()
	if err != nil || !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: %w: not in canonical encoding", ErrInvalidEvidence, ErrMalformed)
	}
	return &e, nil
}

// checkCanonical checks that e is in the form NewEvidence gives: stripped messages, the lower
// digest first (so equal digests fail here as no conflict).
func (e *Evidence) checkCanonical() error {
	for _, m := range []*Message{&e.First, &e.Second} {
		if s := stripForEvidence(*m); len(m.Value) != 0 || m.Certificate != nil || m.Prepared != nil ||
			m.ViewChanges != nil || m.Proposal != nil || m.PreparedView != s.PreparedView {
			return fmt.Errorf("%w: %w: evidence %v carries more than its signed fields", ErrInvalidEvidence, ErrMalformed, m.Type)
		}
	}
	switch c := bytes.Compare(e.First.Digest[:], e.Second.Digest[:]); {
	case c == 0:
		return fmt.Errorf("%w: %w: both sign %s", ErrInvalidEvidence, ErrEvidenceNoConflict, e.First.Digest)
	case c > 0:
		return fmt.Errorf("%w: %w: evidence messages not in digest order", ErrInvalidEvidence, ErrMalformed)
	}
	return nil
}

// Verify checks that e proves an equivocation by a member of vals on chainID: canonical form,
// one signer in the set, one slot of a signed message type, different digests, and both
// signatures valid. It needs no consensus state. The caller decides whether e is recent enough
// and not already on record.
func (e *Evidence) Verify(chainID string, vals *ValidatorSet) error {
	if e == nil || vals == nil {
		return fmt.Errorf("%w: %w: nil evidence or validator set", ErrInvalidEvidence, ErrMalformed)
	}
	a, b := &e.First, &e.Second
	switch a.Type {
	case MsgPrePrepare, MsgPrepare, MsgCommit, MsgViewChange, MsgNewView:
	default:
		// A decision is not signed by its sender: it proves nothing about it.
		return fmt.Errorf("%w: %w: %v is not a signed message type", ErrInvalidEvidence, ErrMalformed, a.Type)
	}
	switch {
	case a.From != b.From:
		return fmt.Errorf("%w: %w: validators %d and %d", ErrInvalidEvidence, ErrEvidenceSigners, a.From, b.From)
	case a.Type != b.Type || a.Height != b.Height || a.View != b.View:
		return fmt.Errorf("%w: %w: %v h=%d v=%d and %v h=%d v=%d", ErrInvalidEvidence, ErrEvidenceSlot,
			a.Type, a.Height, a.View, b.Type, b.Height, b.View)
	case uint64(a.From) >= uint64(len(vals.Validators)):
		return fmt.Errorf("%w: %w: index %d of %d", ErrInvalidEvidence, ErrUnknownValidator, a.From, len(vals.Validators))
	}
	if err := e.checkCanonical(); err != nil {
		return err
	}
	pub := vals.Validators[a.From].PubKey
	var sigs *sigCache // nil: always verify
	for _, m := range []*Message{a, b} {
		if !sigs.verify(pub, SignBytes(chainID, m), m.Sig) {
			return fmt.Errorf("%w: %w: %v from validator %d for %s", ErrInvalidEvidence, ErrBadSignature, m.Type, m.From, m.Digest)
		}
	}
	return nil
}

// recordEquivocation queues a conflicting pair caught by Step for the next Ready, once per slot.
// Precondition: both messages are authenticated and conflict (same signer and slot, different
// digests).
func (c *Core) recordEquivocation(ev *Evidence) {
	if ev == nil {
		return
	}
	e := NewEvidence(ev.First, ev.Second)
	slot := e.Slot()
	if _, seen := c.evidenceSeen[slot]; seen || len(c.evidenceSeen) >= maxEvidenceSeen || len(c.evidence) >= maxPendingEvidence {
		return
	}
	c.evidenceSeen[slot] = struct{}{}
	c.evidence = append(c.evidence, e)
	c.evidenceCaught++
}

// forgetEvidenceBelow drops the reported slots of decided heights: nothing below the current
// height is ever checked for equivocation again.
func (c *Core) forgetEvidenceBelow(height uint64) {
	for s := range c.evidenceSeen {
		if s.Height < height {
			delete(c.evidenceSeen, s)
		}
	}
}
