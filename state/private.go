package state

import (
	"errors"
	"fmt"
	"slices"

	"filippo.io/age"
)

// Private data between named members (issue 14). A payload that only some members may read is
// encrypted (age, to the recipients' X25519 keys registered here) and travels node to node
// outside consensus; the chain keeps only its commitment (SHA-256 of the ciphertext), who sent it,
// to whom, and until which height nodes keep it. Everyone can check the public part; a disclosed
// copy can be proven against the commitment for ever, after every node has purged its ciphertext.
//
// The payload's holders are the sender's member and the recipients: every one of them is a
// member, because it is the members' nodes that store and serve payloads.

// Limits of private data.
const (
	// MaxPrivateRecipients bounds the recipients of one payload.
	MaxPrivateRecipients = 16
	// MaxPrivateBytes bounds the ciphertext of one payload. Nodes may hold a lower limit in
	// their config; the chain refuses a larger declared size.
	MaxPrivateBytes = 1 << 20
)

// Kinds of private records.
const (
	PrivateKindPayload = "payload"
	PrivateKindEscrow  = "escrow"
	PrivateKindClaim   = "claim"
)

// Owner prefixes of encryption keys.
const (
	EncKeyMember   = "member:"
	EncKeyIdentity = "identity:"
)

var (
	// ErrNoEncryptionKey is a private payload addressed to a member with no encryption key.
	ErrNoEncryptionKey = errors.New("state: recipient has no registered encryption key")
	// ErrPrivateNotFound is a commitment with no private record.
	ErrPrivateNotFound = notFound("private record")
	// ErrEncKeyNotFound is an owner with no encryption key.
	ErrEncKeyNotFound = notFound("encryption key")
	// ErrPrivateEscrowNotFound is an unknown private escrow.
	ErrPrivateEscrowNotFound = notFound("private escrow")
)

// EncryptionKeySet (field 30) registers or rotates the X25519 encryption key (an age recipient,
// "age1...") of a member organization or of an identity. Exactly one of Member and Identity is
// set (ErrBadField). Checks: Key is a canonical age X25519 recipient (ErrBadField); the member
// exists (ErrUnknown) and the sender is its controller (ErrNotController), or the identity exists
// (ErrUnknown) and the sender is its controller (ErrNotController). A rotation replaces the key
// for payloads sent from the next transaction on; payloads already sent stay encrypted to the old
// key, which its owner keeps.
type EncryptionKeySet struct {
	Member   string `cbor:"1,keyasint,omitempty"`
	Identity string `cbor:"2,keyasint,omitempty"`
	Key      string `cbor:"3,keyasint"`
}

// PrivateSend (field 31) records a private payload: the SHA-256 Commitment of its ciphertext,
// the Recipients (member names), the ciphertext's Size, and optionally the height Expires from
// which nodes purge the ciphertext. Checks: the sender is a member's controller (ErrNotMember);
// Commitment is not zero (ErrBadField) and not recorded before (ErrExists); Size is 1..
// MaxPrivateBytes (ErrBadField); 1..MaxPrivateRecipients distinct recipients (ErrBadField), each
// a member (ErrUnknown) with an encryption key (ErrNoEncryptionKey); Expires is 0 or above this
// block's height (ErrBadHeight).
type PrivateSend struct {
	Commitment Hash     `cbor:"1,keyasint"`
	Recipients []string `cbor:"2,keyasint"`
	Expires    uint64   `cbor:"3,keyasint,omitempty"`
	Size       uint64   `cbor:"4,keyasint"`
}

// PrivateEscrowCreate (field 32) opens an escrow whose amount and terms are private to its
// parties: the payload (checked as PrivateSend) holds them, the chain keeps the parties, the
// commitment and the status. The value it settles moves under the private terms, not through a
// public balance: a public lock would show the amount. Checks, after the payload's: ID is an ID
// not used before (ErrBadID, ErrExists); Beneficiary is not the sender (ErrSelfTransfer);
// Deadline is above this block's height (ErrBadHeight); the beneficiary and the arbiter, if set,
// are members' controllers (ErrNotMember) and their members are holders of the payload
// (ErrBadField).
type PrivateEscrowCreate struct {
	ID          string      `cbor:"1,keyasint"`
	Beneficiary Address     `cbor:"2,keyasint"`
	Arbiter     *Address    `cbor:"3,keyasint,omitempty"`
	Deadline    uint64      `cbor:"4,keyasint"`
	Private     PrivateSend `cbor:"5,keyasint"`
}

// PrivateEscrowClose (field 33) settles an open private escrow: released (the terms were met)
// or refunded. A release is made by the depositor or the arbiter, below the deadline
// (ErrEscrowExpired; ErrNotArbiter for anyone else). A refund is made by the beneficiary or the
// arbiter at any time, or by the depositor from the deadline on (ErrEscrowNotExpired before it;
// ErrNotDepositor for anyone else). Checks first: the escrow exists (ErrUnknown) and is open
// (ErrEscrowClosed).
type PrivateEscrowClose struct {
	ID     string `cbor:"1,keyasint"`
	Refund bool   `cbor:"2,keyasint,omitempty"`
}

// PrivateClaimIssue (field 34) issues a claim whose content is private to its issuer and
// subject: the payload (checked as PrivateSend) is the content, and the claim's public record
// (ClaimIssue's, with ContentHash the payload's commitment and Private set) keeps the issuer,
// subject, schema, commitment and, later, the revocation. ClaimRevoke revokes it. Checks, after
// ClaimIssue's: the member whose controller controls the subject identity, if there is one, is a
// holder of the payload (ErrBadField).
type PrivateClaimIssue struct {
	ID        string      `cbor:"1,keyasint"`
	Issuer    string      `cbor:"2,keyasint"`
	Subject   string      `cbor:"3,keyasint"`
	Schema    string      `cbor:"4,keyasint"`
	ExpiresMs int64       `cbor:"5,keyasint,omitempty"`
	Private   PrivateSend `cbor:"6,keyasint"`
}

// EncryptionKey is an organization's or identity's current encryption key.
type EncryptionKey struct {
	Owner   string  `cbor:"1,keyasint" json:"owner"` // "member:<name>" or "identity:<id>"
	Key     string  `cbor:"2,keyasint" json:"key"`   // age X25519 recipient
	Version uint64  `cbor:"3,keyasint" json:"version"`
	Height  uint64  `cbor:"4,keyasint" json:"height"`
	SetBy   Address `cbor:"5,keyasint" json:"set_by"`
}

// PrivateRecord is the public part of a private payload.
type PrivateRecord struct {
	Commitment   Hash     `cbor:"1,keyasint" json:"commitment"`
	Kind         string   `cbor:"2,keyasint" json:"kind"`
	Ref          string   `cbor:"3,keyasint,omitempty" json:"ref,omitempty"` // escrow or claim ID
	Sender       Address  `cbor:"4,keyasint" json:"sender"`
	SenderMember string   `cbor:"5,keyasint" json:"sender_member"`
	Recipients   []string `cbor:"6,keyasint" json:"recipients"`
	Expires      uint64   `cbor:"7,keyasint,omitempty" json:"expires,omitempty"`
	Size         uint64   `cbor:"8,keyasint" json:"size"`
	Height       uint64   `cbor:"9,keyasint" json:"height"`
	Tx           Hash     `cbor:"10,keyasint" json:"tx"`
}

// Holders are the members whose nodes keep the payload: the sender's and the recipients.
func (r *PrivateRecord) Holders() []string {
	out := []string{r.SenderMember}
	for _, m := range r.Recipients {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// IsHolder reports whether member is one of the payload's holders.
func (r *PrivateRecord) IsHolder(member string) bool {
	return member == r.SenderMember || slices.Contains(r.Recipients, member)
}

// ExpiredAt reports whether nodes purge the ciphertext once block h is applied.
func (r *PrivateRecord) ExpiredAt(h uint64) bool { return r.Expires != 0 && h >= r.Expires }

// PrivateEscrow is the public part of a private escrow.
type PrivateEscrow struct {
	ID          string   `cbor:"1,keyasint" json:"id"`
	Depositor   Address  `cbor:"2,keyasint" json:"depositor"`
	Beneficiary Address  `cbor:"3,keyasint" json:"beneficiary"`
	Arbiter     *Address `cbor:"4,keyasint,omitempty" json:"arbiter,omitempty"`
	Deadline    uint64   `cbor:"5,keyasint" json:"deadline"`
	Commitment  Hash     `cbor:"6,keyasint" json:"commitment"`
	Status      string   `cbor:"7,keyasint" json:"status"`
	Height      uint64   `cbor:"8,keyasint" json:"height"`
	ClosedAt    uint64   `cbor:"9,keyasint,omitempty" json:"closed_height,omitempty"`
	ClosedBy    *Address `cbor:"10,keyasint,omitempty" json:"closed_by,omitempty"`
}

// Store keys: r/enck/<owner>, r/priv/<32-byte commitment>, r/pescrow/<id>.
func keyEncKey(owner string) string { return recKey("enck", []byte(owner)) }
func keyPrivate(c Hash) string      { return recKey("priv", c[:]) }
func keyPrivateEscrow(id string) string {
	return recKey("pescrow", []byte(id))
}

// ValidEncryptionKey reports whether s is a canonical age X25519 recipient.
func ValidEncryptionKey(s string) bool {
	r, err := age.ParseX25519Recipient(s)
	return err == nil && r.String() == s
}

func (ov *overlay) encryptionKeySet(from Address, op *EncryptionKeySet) error {
	var owner string
	switch {
	case (op.Member == "") == (op.Identity == ""):
		return fmt.Errorf("%w: set exactly one of member and identity", ErrBadField)
	case !ValidEncryptionKey(op.Key):
		return fmt.Errorf("%w: encryption key is not an age X25519 recipient (age1...)", ErrBadField)
	case op.Member != "":
		g, err := ov.gov()
		if err != nil {
			return err
		}
		m, ok := g.memberByName(op.Member)
		if !ok {
			return fmt.Errorf("%w: member %q", ErrUnknown, op.Member)
		}
		if m.Controller != from {
			return fmt.Errorf("%w: of member %q", ErrNotController, op.Member)
		}
		owner = EncKeyMember + op.Member
	default:
		idn, err := ov.identity(op.Identity)
		if err != nil {
			return err
		}
		if idn.Controller != from {
			return fmt.Errorf("%w: of identity %q", ErrNotController, op.Identity)
		}
		owner = EncKeyIdentity + op.Identity
	}
	var k EncryptionKey
	if _, err := ov.load(keyEncKey(owner), &k); err != nil {
		return err
	}
	return ov.store(keyEncKey(owner), &EncryptionKey{Owner: owner, Key: op.Key, Version: k.Version + 1,
		Height: ov.blk.Height, SetBy: from})
}

// checkPrivate checks a payload's public part and returns its record, not yet stored.
func (ov *overlay) checkPrivate(from Address, p *PrivateSend, kind, ref string) (*PrivateRecord, error) {
	g, err := ov.gov()
	if err != nil {
		return nil, err
	}
	sender, ok := g.memberByController(from)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotMember, from)
	}
	switch {
	case p.Commitment == (Hash{}):
		return nil, fmt.Errorf("%w: zero commitment", ErrBadField)
	case p.Size == 0 || p.Size > MaxPrivateBytes:
		return nil, fmt.Errorf("%w: payload of %d bytes, want 1..%d", ErrBadField, p.Size, MaxPrivateBytes)
	case len(p.Recipients) == 0 || len(p.Recipients) > MaxPrivateRecipients:
		return nil, fmt.Errorf("%w: %d recipients, want 1..%d", ErrBadField, len(p.Recipients), MaxPrivateRecipients)
	case p.Expires != 0 && p.Expires <= ov.blk.Height:
		return nil, fmt.Errorf("%w: expiry %d is not after block %d", ErrBadHeight, p.Expires, ov.blk.Height)
	}
	if ok, err := ov.exists(keyPrivate(p.Commitment)); err != nil || ok {
		return nil, existsErr(err, "private payload "+p.Commitment.String())
	}
	for i, name := range p.Recipients {
		if slices.Contains(p.Recipients[:i], name) {
			return nil, fmt.Errorf("%w: recipient %q named twice", ErrBadField, name)
		}
		if _, ok := g.memberByName(name); !ok {
			return nil, fmt.Errorf("%w: recipient member %q", ErrUnknown, name)
		}
		if ok, err := ov.exists(keyEncKey(EncKeyMember + name)); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("%w: member %q", ErrNoEncryptionKey, name)
		}
	}
	return &PrivateRecord{Commitment: p.Commitment, Kind: kind, Ref: ref, Sender: from,
		SenderMember: sender.Name, Recipients: p.Recipients, Expires: p.Expires, Size: p.Size,
		Height: ov.blk.Height, Tx: ov.txHash}, nil
}

func (ov *overlay) privateSend(from Address, op *PrivateSend) error {
	rec, err := ov.checkPrivate(from, op, PrivateKindPayload, "")
	if err != nil {
		return err
	}
	return ov.store(keyPrivate(rec.Commitment), rec)
}

// requireHolder fails with ErrBadField unless party (an account) is a member's controller whose
// member holds rec's payload.
func (ov *overlay) requireHolder(rec *PrivateRecord, party Address, role string) error {
	g, err := ov.gov()
	if err != nil {
		return err
	}
	m, ok := g.memberByController(party)
	if !ok {
		return fmt.Errorf("%w: the %s %s (a private escrow's parties must be members, whose nodes hold the terms)", ErrNotMember, role, party)
	}
	if !rec.IsHolder(m.Name) {
		return fmt.Errorf("%w: the %s's member %q is not a recipient of the terms", ErrBadField, role, m.Name)
	}
	return nil
}

func (ov *overlay) privateEscrowCreate(from Address, op *PrivateEscrowCreate) error {
	rec, err := ov.checkPrivate(from, &op.Private, PrivateKindEscrow, op.ID)
	if err != nil {
		return err
	}
	if err := checkID(op.ID); err != nil {
		return err
	}
	if ok, err := ov.exists(keyPrivateEscrow(op.ID)); err != nil || ok {
		return existsErr(err, "private escrow "+op.ID)
	}
	switch {
	case op.Beneficiary == from:
		return ErrSelfTransfer
	case op.Deadline <= ov.blk.Height:
		return fmt.Errorf("%w: deadline %d is not after block %d", ErrBadHeight, op.Deadline, ov.blk.Height)
	}
	if err := ov.requireHolder(rec, op.Beneficiary, "beneficiary"); err != nil {
		return err
	}
	if op.Arbiter != nil {
		if err := ov.requireHolder(rec, *op.Arbiter, "arbiter"); err != nil {
			return err
		}
	}
	if err := ov.store(keyPrivate(rec.Commitment), rec); err != nil {
		return err
	}
	return ov.store(keyPrivateEscrow(op.ID), &PrivateEscrow{ID: op.ID, Depositor: from,
		Beneficiary: op.Beneficiary, Arbiter: op.Arbiter, Deadline: op.Deadline,
		Commitment: rec.Commitment, Status: EscrowOpen, Height: ov.blk.Height})
}

func (ov *overlay) privateEscrowClose(from Address, op *PrivateEscrowClose) error {
	var e PrivateEscrow
	ok, err := ov.load(keyPrivateEscrow(op.ID), &e)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: private escrow %q", ErrUnknown, op.ID)
	}
	if e.Status != EscrowOpen {
		return fmt.Errorf("%w: private escrow %q is %s", ErrEscrowClosed, op.ID, e.Status)
	}
	arbiter := e.Arbiter != nil && *e.Arbiter == from
	if !op.Refund {
		switch {
		case ov.blk.Height >= e.Deadline:
			return fmt.Errorf("%w: deadline %d, block %d", ErrEscrowExpired, e.Deadline, ov.blk.Height)
		case from != e.Depositor && !arbiter:
			return fmt.Errorf("%w: a private escrow is released by its depositor or its arbiter", ErrNotArbiter)
		}
		e.Status = EscrowReleased
	} else {
		switch {
		case arbiter || from == e.Beneficiary:
		case from != e.Depositor:
			return ErrNotDepositor
		case ov.blk.Height < e.Deadline:
			return fmt.Errorf("%w: deadline %d, block %d", ErrEscrowNotExpired, e.Deadline, ov.blk.Height)
		}
		e.Status = EscrowRefunded
	}
	e.ClosedAt, e.ClosedBy = ov.blk.Height, &from
	return ov.store(keyPrivateEscrow(op.ID), &e)
}

func (ov *overlay) privateClaimIssue(from Address, op *PrivateClaimIssue) error {
	rec, err := ov.checkPrivate(from, &op.Private, PrivateKindClaim, op.ID)
	if err != nil {
		return err
	}
	if err := ov.claimIssue(from, &ClaimIssue{ID: op.ID, Issuer: op.Issuer, Subject: op.Subject,
		Schema: op.Schema, ContentHash: op.Private.Commitment, ExpiresMs: op.ExpiresMs}); err != nil {
		return err
	}
	subject, err := ov.identity(op.Subject)
	if err != nil {
		return err
	}
	g, err := ov.gov()
	if err != nil {
		return err
	}
	if m, ok := g.memberByController(subject.Controller); ok && !rec.IsHolder(m.Name) {
		return fmt.Errorf("%w: the subject's member %q is not a recipient of the claim", ErrBadField, m.Name)
	}
	var c Claim
	if _, err := ov.load(keyClaim(op.ID), &c); err != nil {
		return err
	}
	c.Private = true
	if err := ov.store(keyClaim(op.ID), &c); err != nil {
		return err
	}
	return ov.store(keyPrivate(rec.Commitment), rec)
}

// EncryptionKey returns the current encryption key of owner ("member:<name>" or
// "identity:<id>").
func (s *State) EncryptionKey(owner string) (EncryptionKey, error) {
	return getOr[EncryptionKey](s, keyEncKey(owner), ErrEncKeyNotFound)
}

// EncryptionKeys returns every registered encryption key, by owner.
func (s *State) EncryptionKeys() ([]EncryptionKey, error) {
	return scanAll[EncryptionKey](s, recKey("enck"))
}

// PrivateRecord returns the public part of the payload with commitment c.
func (s *State) PrivateRecord(c Hash) (PrivateRecord, error) {
	return getOr[PrivateRecord](s, keyPrivate(c), ErrPrivateNotFound)
}

// PrivateRecords returns the public part of every private payload, by commitment.
func (s *State) PrivateRecords() ([]PrivateRecord, error) {
	return scanAll[PrivateRecord](s, recKey("priv"))
}

// PrivateEscrow returns the public part of the private escrow id.
func (s *State) PrivateEscrow(id string) (PrivateEscrow, error) {
	return getOr[PrivateEscrow](s, keyPrivateEscrow(id), ErrPrivateEscrowNotFound)
}
