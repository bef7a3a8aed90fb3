package consensus

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// signDomain separates consensus signatures from every other use of a validator's key.
const signDomain = "guild/consensus/v1"

// Decoder limits. A Message nests at most six levels (new view, its view changes, one view
// change, its prepared proof, the proof's prepares, one vote), holds at most twelve fields per map
// and at most one vote or view change per validator in an array.
const (
	maxNestedLevels  = 6
	maxMapPairs      = 16 // the library's minimum; a Message has 13 fields
	maxArrayElements = MaxValidators
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	// Core deterministic encoding (RFC 8949 §4.2.1): the same message gives the same bytes on every
	// machine, which is what sign bytes need.
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("consensus: cbor encoder options: %v", err))
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF, // two values for one field would be two readings of one message
		IndefLength:       cbor.IndefLengthForbidden, // not deterministic, and unbounded until the end
		TagsMd:            cbor.TagsForbidden,        // nothing here is tagged; less surface
		MaxNestedLevels:   maxNestedLevels,
		MaxArrayElements:  maxArrayElements,
		MaxMapPairs:       maxMapPairs,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("consensus: cbor decoder options: %v", err))
	}
}

// UnmarshalCBOR accepts only a 32-byte byte string: the library's default would silently pad or
// truncate a byte string of another length into the array.
func (d *Digest) UnmarshalCBOR(b []byte) error {
	// A 32-byte byte string is encoded as major type 2 with a one-byte length: 0x58 0x20.
	if len(b) != 2+len(d) || b[0] != 0x58 || b[1] != byte(len(d)) {
		return errors.New("consensus: digest must be a 32-byte byte string")
	}
	copy(d[:], b[2:])
	return nil
}

// signedFields is what a signature covers, as a CBOR array.
type signedFields struct {
	_      struct{} `cbor:",toarray"`
	Type   MsgType
	Height uint64
	View   uint64
	From   uint32
	Digest Digest
}

// viewChangeSignedFields is what a ViewChange's signature covers.
type viewChangeSignedFields struct {
	_            struct{} `cbor:",toarray"`
	Type         MsgType
	Height       uint64
	View         uint64
	From         uint32
	Digest       Digest
	PreparedView uint64
}

// SignBytes is what a validator signs for m: "guild/consensus/v1" ‖ 0 ‖ chainID ‖ 0 ‖ the
// deterministic CBOR array [Type, Height, View, From, Digest]. The domain tag and chain ID make a
// signature useless for any other purpose or chain; New rejects a chain ID containing a zero byte,
// which keeps the concatenation unambiguous. Value and Certificate are not covered: the digest
// binds the value, and a certificate carries its own signatures.
//
// A ViewChange's array also carries PreparedView, [Type, Height, View, From, Digest,
// PreparedView], so that its signature binds which prepared certificate it claims (a new leader
// cannot swap or strip it).
func SignBytes(chainID string, m *Message) []byte {
	var fields any = signedFields{Type: m.Type, Height: m.Height, View: m.View, From: m.From, Digest: m.Digest}
	if m.Type == MsgViewChange {
		fields = viewChangeSignedFields{Type: m.Type, Height: m.Height, View: m.View, From: m.From, Digest: m.Digest, PreparedView: m.PreparedView}
	}
	enc, err := encMode.Marshal(fields)
	if err != nil {
		// Fixed-size integers and a byte array always encode.
		panic(fmt.Sprintf("consensus: encoding sign bytes failed, which is a bug: %v", err))
	}
	b := make([]byte, 0, len(signDomain)+1+len(chainID)+1+len(enc))
	b = append(b, signDomain...)
	b = append(b, 0)
	b = append(b, chainID...)
	b = append(b, 0)
	return append(b, enc...)
}

// Sign fills m.Sig with key's signature over SignBytes(chainID, m). key must be a valid ed25519
// private key.
func Sign(chainID string, key ed25519.PrivateKey, m *Message) {
	m.Sig = ed25519.Sign(key, SignBytes(chainID, m))
}

// VerifyMessage checks what can be checked of m without consensus state: a known type, a sender in
// vals, a value (matching the digest) exactly on PrePrepare and Decision, a certificate for the
// same slot exactly on Decision, and the sender's signature — or, on a Decision, which needs none,
// the certificate. The p2p topic validator calls it off the consensus loop; Step calls it again
// (a node shares a SignatureMemo between the two so that no signature is verified twice: see
// VerifyMessageWith).
func VerifyMessage(chainID string, vals ValidatorSet, m *Message) error {
	return VerifyMessageWith(chainID, vals, m, nil)
}

// VerifyMessageWith is VerifyMessage that skips signatures memo holds and adds to it those it
// verifies. A node gives its topic validator and its core (Config.Memo) the same memo, so a
// message is verified once there, not twice. A nil memo verifies every signature.
func VerifyMessageWith(chainID string, vals ValidatorSet, m *Message, memo SignatureMemo) error {
	if err := checkShape(vals, m); err != nil {
		return err
	}
	return checkAuth(chainID, vals, m, memoCache(memo))
}

// VerifySignature is ed25519.Verify through memo (nil: none), for a node that checks a consensus
// signature outside VerifyMessageWith (a proposal by reference) and wants Step not to repeat it.
func VerifySignature(memo SignatureMemo, pub ed25519.PublicKey, msg, sig []byte) bool {
	return memoCache(memo).verify(pub, msg, sig)
}

// checkShape is the part of VerifyMessage that needs no signature check.
func checkShape(vals ValidatorSet, m *Message) error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrMalformed)
	}
	switch m.Type {
	case MsgPrePrepare, MsgPrepare, MsgCommit, MsgDecision, MsgViewChange, MsgNewView:
	default:
		return fmt.Errorf("%w: unknown type %d", ErrMalformed, m.Type)
	}
	if uint64(m.From) >= uint64(len(vals.Validators)) {
		return fmt.Errorf("%w: index %d of %d", ErrUnknownValidator, m.From, len(vals.Validators))
	}
	carriesValue := m.Type == MsgPrePrepare || m.Type == MsgDecision
	switch {
	case carriesValue && len(m.Value) == 0:
		return fmt.Errorf("%w: %v without a value", ErrMalformed, m.Type)
	case !carriesValue && len(m.Value) != 0:
		return fmt.Errorf("%w: %v with a value", ErrMalformed, m.Type)
	case carriesValue && DigestOf(m.Value) != m.Digest:
		return fmt.Errorf("%w: %v value does not match its digest", ErrMalformed, m.Type)
	}
	if m.Type != MsgViewChange && (m.Prepared != nil || m.PreparedView != 0) {
		return fmt.Errorf("%w: %v with a prepared certificate", ErrMalformed, m.Type)
	}
	if m.Type != MsgNewView && (m.ViewChanges != nil || m.Proposal != nil) {
		return fmt.Errorf("%w: %v with a new view's justification", ErrMalformed, m.Type)
	}
	if m.Type != MsgDecision && m.Certificate != nil {
		return fmt.Errorf("%w: %v with a certificate", ErrMalformed, m.Type)
	}
	switch m.Type {
	case MsgViewChange:
		return checkViewChange(vals, m, true)
	case MsgNewView:
		return checkNewView(vals, m)
	}
	if m.Type != MsgDecision {
		if m.Certificate != nil {
			return fmt.Errorf("%w: %v with a certificate", ErrMalformed, m.Type)
		}
		return nil
	}
	c := m.Certificate
	if c == nil {
		return fmt.Errorf("%w: decision without a certificate", ErrMalformed)
	}
	if c.Height != m.Height || c.View != m.View || c.Digest != m.Digest {
		return fmt.Errorf("%w: decision's certificate is for another slot", ErrMalformed)
	}
	return nil
}

// checkAuth verifies the sender's signature, or a decision's certificate. m has passed checkShape.
func checkAuth(chainID string, vals ValidatorSet, m *Message, sigs *sigCache) error {
	if m.Type == MsgDecision {
		return verifyCertificate(chainID, vals, m.Certificate, sigs)
	}
	if !sigs.verify(vals.Validators[m.From].PubKey, SignBytes(chainID, m), m.Sig) {
		return fmt.Errorf("%w: %v from validator %d", ErrBadSignature, m.Type, m.From)
	}
	switch m.Type {
	case MsgViewChange:
		return verifyPrepared(chainID, vals, m.Prepared, sigs)
	case MsgNewView:
		return verifyNewView(chainID, vals, m, sigs)
	}
	return nil
}

// DecisionMessage is the catch-up message for a committed value, for a node that serves blocks to
// a lagging peer. It needs no signature (the certificate is the proof); from only says who sent it.
func DecisionMessage(from uint32, c Committed) Message {
	cert := c.Certificate
	return Message{
		Type:        MsgDecision,
		Height:      cert.Height,
		View:        cert.View,
		From:        from,
		Digest:      cert.Digest,
		Value:       c.Value,
		Certificate: &cert,
	}
}

// EncodeMessage encodes m with the deterministic encoding.
func EncodeMessage(m *Message) ([]byte, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil message", ErrMalformed)
	}
	b, err := encMode.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("consensus: encode message: %w", err)
	}
	return b, nil
}

// DecodeMessage decodes one message of at most maxBytes bytes. The size is checked before any
// decoding, the decoder's depth, count and duplicate-key limits bound what a hostile peer can make
// it do, and unknown fields and trailing bytes are rejected. It checks form only: call
// VerifyMessage before trusting the result.
func DecodeMessage(b []byte, maxBytes int) (*Message, error) {
	if len(b) > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), maxBytes)
	}
	var m Message
	rest, err := decMode.UnmarshalFirst(b, &m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	return &m, nil
}
