package state

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Hash is a SHA-256 digest: of a transaction, a block, or the state.
type Hash [32]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText prints hashes as lower-case hex in JSON.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads 64 hex characters.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseHash reads 64 hex characters.
func ParseHash(s string) (Hash, error) {
	var h Hash
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != len(h) {
		return h, fmt.Errorf("state: hash must be 64 hex characters, got %q", s)
	}
	copy(h[:], raw)
	return h, nil
}

// txSignTag separates transaction signatures from every other signature Guild makes.
const txSignTag = "guild/tx/v1"

var (
	ErrMalformedTx  = errors.New("state: malformed transaction")
	ErrTxTooLarge   = errors.New("state: transaction too large")
	ErrBadSignature = errors.New("state: bad signature")
	ErrWrongChain   = errors.New("state: wrong chain ID")
	ErrBadNonce     = errors.New("state: wrong nonce")
	ErrNoFunds      = errors.New("state: insufficient funds")
	ErrOverflow     = errors.New("state: amount overflow")
	ErrBadAmount    = errors.New("state: amount must be positive")
	ErrSelfTransfer = errors.New("state: transfer to self")
	ErrNoOperation  = errors.New("state: transaction has no operation")
	// ErrNonceAhead is the one ErrBadNonce that may pass later: an earlier nonce of the sender
	// is still missing, and once it is applied this transaction can be.
	ErrNonceAhead = fmt.Errorf("%w: ahead of the account's next", ErrBadNonce)
)

// Transfer moves Amount of the native currency from the sender to To.
type Transfer struct {
	To     Address `cbor:"1,keyasint"`
	Amount uint64  `cbor:"2,keyasint"`
}

// TxBody is what a transaction's signers sign. Exactly one operation field is set; new operations
// are new optional fields, so old transactions keep their bytes and hashes.
type TxBody struct {
	ChainID  string    `cbor:"1,keyasint"`
	From     Address   `cbor:"2,keyasint"`
	Nonce    uint64    `cbor:"3,keyasint"`
	Transfer *Transfer `cbor:"4,keyasint,omitempty"`

	SetSigners       *SetSigners       `cbor:"5,keyasint,omitempty"`
	AssetCreate      *AssetCreate      `cbor:"6,keyasint,omitempty"`
	AssetMint        *AssetMint        `cbor:"7,keyasint,omitempty"`
	AssetBurn        *AssetBurn        `cbor:"8,keyasint,omitempty"`
	AssetTransfer    *AssetTransfer    `cbor:"9,keyasint,omitempty"`
	ItemRegister     *ItemRegister     `cbor:"10,keyasint,omitempty"`
	ItemTransfer     *ItemTransfer     `cbor:"11,keyasint,omitempty"`
	NotaryAnchor     *NotaryAnchor     `cbor:"12,keyasint,omitempty"`
	EscrowCreate     *EscrowCreate     `cbor:"13,keyasint,omitempty"`
	EscrowRelease    *EscrowRelease    `cbor:"14,keyasint,omitempty"`
	EscrowRefund     *EscrowRefund     `cbor:"15,keyasint,omitempty"`
	IdentityRegister *IdentityRegister `cbor:"16,keyasint,omitempty"`
	ClaimIssue       *ClaimIssue       `cbor:"17,keyasint,omitempty"`
	ClaimRevoke      *ClaimRevoke      `cbor:"18,keyasint,omitempty"`
	BallotCreate     *BallotCreate     `cbor:"19,keyasint,omitempty"`
	BallotVote       *BallotVote       `cbor:"20,keyasint,omitempty"`
	GovPropose       *GovPropose       `cbor:"21,keyasint,omitempty"`
	GovVote          *GovVote          `cbor:"22,keyasint,omitempty"`

	// Private data between named members (issue 14): private.go. Numbered from 30 so that other
	// operations added meanwhile can take 23 onwards.
	EncryptionKeySet    *EncryptionKeySet    `cbor:"30,keyasint,omitempty"`
	PrivateSend         *PrivateSend         `cbor:"31,keyasint,omitempty"`
	PrivateEscrowCreate *PrivateEscrowCreate `cbor:"32,keyasint,omitempty"`
	PrivateEscrowClose  *PrivateEscrowClose  `cbor:"33,keyasint,omitempty"`
	PrivateClaimIssue   *PrivateClaimIssue   `cbor:"34,keyasint,omitempty"`
}

// opCount is how many operation fields are set.
func (b *TxBody) opCount() int {
	n := 0
	for _, set := range [...]bool{b.Transfer != nil, b.SetSigners != nil, b.AssetCreate != nil,
		b.AssetMint != nil, b.AssetBurn != nil, b.AssetTransfer != nil, b.ItemRegister != nil,
		b.ItemTransfer != nil, b.NotaryAnchor != nil, b.EscrowCreate != nil, b.EscrowRelease != nil,
		b.EscrowRefund != nil, b.IdentityRegister != nil, b.ClaimIssue != nil, b.ClaimRevoke != nil,
		b.BallotCreate != nil, b.BallotVote != nil, b.GovPropose != nil, b.GovVote != nil,
		b.EncryptionKeySet != nil, b.PrivateSend != nil, b.PrivateEscrowCreate != nil,
		b.PrivateEscrowClose != nil, b.PrivateClaimIssue != nil} {
		if set {
			n++
		}
	}
	return n
}

// Signature is one signer's ed25519 signature over SignBytes.
type Signature struct {
	PubKey []byte `cbor:"1,keyasint"`
	Sig    []byte `cbor:"2,keyasint"`
}

// Tx is a signed transaction as it travels and as it is stored in blocks.
type Tx struct {
	Body TxBody      `cbor:"1,keyasint"`
	Sigs []Signature `cbor:"2,keyasint"`
}

// SignBytes is domain tag ‖ 0 ‖ chain ID ‖ 0 ‖ encoding(body): a signature for one chain or one
// purpose is never valid for another.
func SignBytes(chainID string, body *TxBody) ([]byte, error) {
	head := len(txSignTag) + len(chainID) + 2
	if body.Transfer != nil && body.opCount() == 1 {
		// Nearly every transaction: encoded by hand straight into the result (txfast.go).
		b := make([]byte, 0, head+80+len(body.ChainID))
		return appendTransferBody(appendSignHead(b, chainID), body), nil
	}
	enc, err := Marshal(body)
	if err != nil {
		return nil, err
	}
	return append(appendSignHead(make([]byte, 0, head+len(enc)), chainID), enc...), nil
}

func appendSignHead(b []byte, chainID string) []byte {
	b = append(b, txSignTag...)
	b = append(b, 0)
	b = append(b, chainID...)
	return append(b, 0)
}

// CoSign adds key's signature to tx (an officer co-signing a multi-signature account's
// transaction). It does not check that key is a signatory, and refuses a key that already signed.
func CoSign(tx *Tx, key ed25519.PrivateKey) error {
	pub := key.Public().(ed25519.PublicKey)
	for _, s := range tx.Sigs {
		if bytes.Equal(s.PubKey, pub) {
			return fmt.Errorf("%w: this key has already signed", ErrMalformedTx)
		}
	}
	if len(tx.Sigs) >= MaxSigners {
		return fmt.Errorf("%w: already %d signatures", ErrMalformedTx, len(tx.Sigs))
	}
	msg, err := SignBytes(tx.Body.ChainID, &tx.Body)
	if err != nil {
		return err
	}
	tx.Sigs = append(tx.Sigs, Signature{PubKey: bytes.Clone(pub), Sig: ed25519.Sign(key, msg)})
	return nil
}

// SignTx signs body with key and returns the transaction ready to submit.
func SignTx(body TxBody, key ed25519.PrivateKey) (*Tx, error) {
	msg, err := SignBytes(body.ChainID, &body)
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	return &Tx{Body: body, Sigs: []Signature{{PubKey: bytes.Clone(pub), Sig: ed25519.Sign(key, msg)}}}, nil
}

// Encode gives the canonical bytes of tx; its hash is the transaction's ID.
func (tx *Tx) Encode() ([]byte, error) { return Marshal(tx) }

// HashTx is the ID of an encoded transaction.
func HashTx(raw []byte) Hash { return sha256.Sum256(raw) }

// DecodeTx parses raw transaction bytes and checks their shape: size, canonical encoding, exactly
// one operation, 1..MaxSigners well-formed signatures by distinct keys. It does not verify
// signatures (see VerifyTx) or look at state.
func DecodeTx(raw []byte) (*Tx, error) {
	if len(raw) > MaxTxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTxTooLarge, len(raw), MaxTxBytes)
	}
	tx, ok := decodeTransferTx(raw) // canonical by construction (txfast.go)
	if !ok {
		tx = new(Tx)
		if err := Unmarshal(raw, tx); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformedTx, err)
		}
		// Re-encoding must give the same bytes, so one transaction has exactly one hash.
		again, err := Marshal(tx)
		if err != nil || !bytes.Equal(again, raw) {
			return nil, fmt.Errorf("%w: not in canonical encoding", ErrMalformedTx)
		}
	}
	switch ops := tx.Body.opCount(); {
	case ops == 0:
		return nil, ErrNoOperation
	case ops > 1:
		return nil, fmt.Errorf("%w: %d operations, want exactly 1", ErrMalformedTx, ops)
	}
	if len(tx.Sigs) == 0 || len(tx.Sigs) > MaxSigners {
		return nil, fmt.Errorf("%w: want 1..%d signatures, got %d", ErrMalformedTx, MaxSigners, len(tx.Sigs))
	}
	for i, s := range tx.Sigs {
		if len(s.PubKey) != ed25519.PublicKeySize || len(s.Sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: signature or key of wrong length", ErrMalformedTx)
		}
		// Distinct signers, so that counting signatures counts signatories.
		for _, t := range tx.Sigs[:i] {
			if bytes.Equal(s.PubKey, t.PubKey) {
				return nil, fmt.Errorf("%w: two signatures by one key", ErrMalformedTx)
			}
		}
	}
	return tx, nil
}
