package api

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Private data between named members (issue 14): the JSON of /v1/private, /v1/encryption-keys and
// /v1/private-escrows, and how a reader proves to a node that it is a payload's recipient.

// EncryptionKey answers GET /v1/encryption-keys/{owner}: an organization's ("member:NAME") or an
// identity's ("identity:ID") current X25519 key, as an age recipient.
type EncryptionKey struct {
	Owner   string `json:"owner"`
	Key     string `json:"key"` // age1...
	Version uint64 `json:"version"`
	Height  uint64 `json:"height"`
	SetBy   string `json:"set_by"`
}

// EncryptionKeysResponse answers GET /v1/encryption-keys.
type EncryptionKeysResponse struct {
	Keys []EncryptionKey `json:"keys"`
}

// PrivateRecord is the public part of a private payload, as every node shows it, with what this
// node holds of it.
type PrivateRecord struct {
	Commitment   string   `json:"commitment"` // SHA-256 of the ciphertext
	Kind         string   `json:"kind"`       // payload, escrow or claim
	Ref          string   `json:"ref,omitempty"`
	Sender       string   `json:"sender"`
	SenderMember string   `json:"sender_member"`
	Recipients   []string `json:"recipients"`
	Expires      uint64   `json:"expires,omitempty"` // the height from which nodes purge it
	Size         uint64   `json:"size"`
	Height       uint64   `json:"height"`
	Tx           string   `json:"tx"`
	// Held: this node stores the ciphertext. Purged: the expiry height has passed.
	Held   bool `json:"held"`
	Purged bool `json:"purged,omitempty"`
}

// PrivateListResponse answers GET /v1/private.
type PrivateListResponse struct {
	Member  string          `json:"member,omitempty"` // the member this node holds payloads for
	Records []PrivateRecord `json:"records"`
}

// SubmitPrivateRequest is POST /v1/private: a signed transaction with a private operation and the
// ciphertext it commits to.
type SubmitPrivateRequest struct {
	Tx         string `json:"tx"`         // hex
	Ciphertext string `json:"ciphertext"` // hex
}

// SubmitPrivateResponse answers POST /v1/private.
type SubmitPrivateResponse struct {
	Hash       string `json:"hash"`
	Commitment string `json:"commitment"`
	Status     string `json:"status"`
}

// PrivateCiphertext answers GET /v1/private/{commitment}/ciphertext to a recipient.
type PrivateCiphertext struct {
	Commitment string `json:"commitment"`
	Ciphertext string `json:"ciphertext"` // hex
}

// PrivateEscrow answers GET /v1/private-escrows/{id}: the public part of a private escrow.
type PrivateEscrow struct {
	ID          string `json:"id"`
	Depositor   string `json:"depositor"`
	Beneficiary string `json:"beneficiary"`
	Arbiter     string `json:"arbiter,omitempty"`
	Deadline    uint64 `json:"deadline"`
	Commitment  string `json:"commitment"`
	Status      string `json:"status"`
	Height      uint64 `json:"height"`
	ClosedAt    uint64 `json:"closed_height,omitempty"`
	ClosedBy    string `json:"closed_by,omitempty"`
}

// A reader of a private payload signs, with an ed25519 key that controls a recipient member's
// account (the account's own key, or one of its signatories), the request's commitment and the
// time; the node accepts the signature within PrivateReadWindowMs of its clock. The headers:
const (
	HeaderSigner    = "X-Guild-Signer"    // hex ed25519 public key
	HeaderTime      = "X-Guild-Time"      // unix milliseconds
	HeaderSignature = "X-Guild-Signature" // hex signature over PrivateReadSignBytes
	// PrivateReadWindowMs bounds how far a read request's time may be from the node's clock, so a
	// captured request stops working soon.
	PrivateReadWindowMs = 5 * 60 * 1000
	privateReadTag      = "guild/private-read/v1"
)

// PrivateReadSignBytes are the bytes a reader signs: tag ‖ 0 ‖ chain ID ‖ 0 ‖ commitment (32
// bytes) ‖ time (unix ms, 8 bytes big endian). Neither another chain's nor another payload's
// request can reuse the signature.
func PrivateReadSignBytes(chainID string, commitment [32]byte, timeMs int64) []byte {
	b := make([]byte, 0, len(privateReadTag)+len(chainID)+2+32+8)
	b = append(b, privateReadTag...)
	b = append(b, 0)
	b = append(b, chainID...)
	b = append(b, 0)
	b = append(b, commitment[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(timeMs))
}

// SignPrivateRead sets the headers of a read request signed by key.
func SignPrivateRead(h http.Header, key ed25519.PrivateKey, chainID string, commitment [32]byte, timeMs int64) {
	h.Set(HeaderSigner, hex.EncodeToString(key.Public().(ed25519.PublicKey)))
	h.Set(HeaderTime, strconv.FormatInt(timeMs, 10))
	h.Set(HeaderSignature, hex.EncodeToString(ed25519.Sign(key, PrivateReadSignBytes(chainID, commitment, timeMs))))
}

// ErrPrivateReadAuth is a read request whose signature headers are missing or wrong.
var ErrPrivateReadAuth = errors.New("private read: missing or invalid signature")

// VerifyPrivateRead checks a read request's headers against the node's clock nowMs and returns
// the signer's public key.
func VerifyPrivateRead(h http.Header, chainID string, commitment [32]byte, nowMs int64) (ed25519.PublicKey, error) {
	pub, err := hex.DecodeString(h.Get(HeaderSigner))
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %s must be a hex ed25519 public key", ErrPrivateReadAuth, HeaderSigner)
	}
	ts, err := strconv.ParseInt(h.Get(HeaderTime), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: %s must be unix milliseconds", ErrPrivateReadAuth, HeaderTime)
	}
	if d := nowMs - ts; d > PrivateReadWindowMs || d < -PrivateReadWindowMs {
		return nil, fmt.Errorf("%w: request time is %d ms from the node's clock (window %d)", ErrPrivateReadAuth, d, PrivateReadWindowMs)
	}
	sig, err := hex.DecodeString(h.Get(HeaderSignature))
	if err != nil || !ed25519.Verify(pub, PrivateReadSignBytes(chainID, commitment, ts), sig) {
		return nil, fmt.Errorf("%w: the signature does not verify", ErrPrivateReadAuth)
	}
	return pub, nil
}
