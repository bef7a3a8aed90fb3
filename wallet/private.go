package wallet

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"filippo.io/age"

	"github.com/guild-ledger/guild/state"
)

// Private payloads (issue 14). A wallet key may have X25519 encryption identities (age), kept
// beside it and encrypted under it:
//
//	DIR/enc/<name>.<version>.json  {"name", "version", "recipient": "age1…", "encrypted_identity": "<hex>"}
//
// encrypted_identity is nonce ‖ AES-256-GCM(identity) under SHA-256(tag ‖ the key's ed25519 seed),
// with name, version and recipient as associated data: whoever can decrypt the wallet key (its
// passphrase) can decrypt its encryption identities, and one passphrase prompt opens both.
//
// Version 1 is the first; a rotation adds the next and keeps the old ones, so payloads sent to an
// old key still decrypt. The recipient (public) half is what goes on chain (EncryptionKeySet).
// Payloads are encrypted here to the recipients' registered keys and decrypted here: a node only
// ever holds ciphertext.

// ErrNoEncryptionKey is a wallet key without an encryption identity.
var ErrNoEncryptionKey = errors.New("wallet: no encryption key for this key")

// ErrCommitment is a ciphertext that does not hash to the commitment it should.
var ErrCommitment = errors.New("wallet: ciphertext does not match the commitment")

type encFile struct {
	Name              string `json:"name"`
	Version           int    `json:"version"`
	Recipient         string `json:"recipient"`
	EncryptedIdentity string `json:"encrypted_identity"`
}

func (k *Keystore) encDir() string { return filepath.Join(k.Dir, "enc") }

// encFiles reads name's encryption identity files, oldest first.
func (k *Keystore) encFiles(name string) ([]encFile, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	paths, err := filepath.Glob(filepath.Join(k.encDir(), name+".*.json"))
	if err != nil {
		return nil, err
	}
	var out []encFile
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("wallet: reading encryption key: %w", err)
		}
		var f encFile
		if err := json.Unmarshal(data, &f); err != nil || f.Name != name || !state.ValidEncryptionKey(f.Recipient) {
			return nil, fmt.Errorf("%w: %s", ErrCorruptKey, p)
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b encFile) int { return a.Version - b.Version })
	return out, nil
}

// EncryptionRecipients returns the public halves of name's encryption identities, oldest first:
// the last is the current one.
func (k *Keystore) EncryptionRecipients(name string) ([]string, error) {
	fs, err := k.encFiles(name)
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Recipient
	}
	return out, err
}

// encSealKey is the AES key that encrypts key's encryption identities.
func encSealKey(key ed25519.PrivateKey, f *encFile) (cipher.AEAD, []byte, error) {
	k := sha256.Sum256(append([]byte("guild/wallet/encryption-identity/v1\x00"), key.Seed()...))
	defer clear(k[:])
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	ad := fmt.Appendf(nil, "%s\x00%d\x00%s", f.Name, f.Version, f.Recipient)
	return aead, ad, err
}

// NewEncryptionKey makes a new X25519 identity for name (the first, or a rotation), stores it
// encrypted under name's key (loaded with Load), and returns its recipient to register on chain.
func (k *Keystore) NewEncryptionKey(name string, key ed25519.PrivateKey) (string, error) {
	e, err := k.Get(name)
	if err != nil {
		return "", err
	}
	if !bytes.Equal(key.Public().(ed25519.PublicKey), e.PubKey) {
		return "", fmt.Errorf("wallet: the key given is not %q", name)
	}
	fs, err := k.encFiles(name)
	if err != nil {
		return "", err
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", fmt.Errorf("wallet: generating encryption key: %w", err)
	}
	f := encFile{Name: name, Version: len(fs) + 1, Recipient: id.Recipient().String()}
	aead, ad, err := encSealKey(key, &f)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	f.EncryptedIdentity = hex.EncodeToString(aead.Seal(nonce, nonce, []byte(id.String()), ad))
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(k.encDir(), 0o700); err != nil {
		return "", err
	}
	p := filepath.Join(k.encDir(), fmt.Sprintf("%s.%d.json", name, f.Version))
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("wallet: writing encryption key: %w", err)
	}
	if _, err := out.Write(append(data, '\n')); err != nil {
		out.Close()
		return "", fmt.Errorf("wallet: writing encryption key: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	syncDir(k.encDir())
	return f.Recipient, nil
}

// EncryptionIdentities decrypts name's encryption identities (every version) with name's key.
func (k *Keystore) EncryptionIdentities(name string, key ed25519.PrivateKey) ([]age.Identity, error) {
	fs, err := k.encFiles(name)
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("%w %q: create one with `guild private key set`", ErrNoEncryptionKey, name)
	}
	var out []age.Identity
	for i := range fs {
		f := &fs[i]
		aead, ad, err := encSealKey(key, f)
		if err != nil {
			return nil, err
		}
		raw, err := hex.DecodeString(f.EncryptedIdentity)
		if err != nil || len(raw) < aead.NonceSize() {
			return nil, fmt.Errorf("%w: encryption key %d of %q", ErrCorruptKey, f.Version, name)
		}
		s, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], ad)
		if err != nil {
			return nil, fmt.Errorf("%w: encryption key %d of %q does not open with this key", ErrCorruptKey, f.Version, name)
		}
		id, err := age.ParseX25519Identity(string(s))
		clear(s)
		if err != nil || id.Recipient().String() != f.Recipient {
			return nil, fmt.Errorf("%w: encryption key %d of %q does not match its recipient", ErrCorruptKey, f.Version, name)
		}
		out = append(out, id)
	}
	return out, nil
}

// Seal encrypts plaintext with age to every recipient (age1… keys) and returns the ciphertext and
// its commitment, the SHA-256 that goes on chain.
func Seal(plaintext []byte, recipients []string) ([]byte, state.Hash, error) {
	if len(recipients) == 0 {
		return nil, state.Hash{}, fmt.Errorf("%w: no recipient", state.ErrBadField)
	}
	rs := make([]age.Recipient, 0, len(recipients))
	for _, s := range recipients {
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, state.Hash{}, fmt.Errorf("%w: encryption key %q: %v", state.ErrBadField, s, err)
		}
		rs = append(rs, r)
	}
	var ct bytes.Buffer
	w, err := age.Encrypt(&ct, rs...)
	if err != nil {
		return nil, state.Hash{}, fmt.Errorf("wallet: encrypting: %w", err)
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, state.Hash{}, fmt.Errorf("wallet: encrypting: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, state.Hash{}, fmt.Errorf("wallet: encrypting: %w", err)
	}
	if ct.Len() > state.MaxPrivateBytes {
		return nil, state.Hash{}, fmt.Errorf("%w: ciphertext of %d bytes, limit %d", state.ErrBadField, ct.Len(), state.MaxPrivateBytes)
	}
	return ct.Bytes(), sha256.Sum256(ct.Bytes()), nil
}

// Unseal checks ciphertext against commitment and decrypts it with ids.
func Unseal(ciphertext []byte, commitment state.Hash, ids []age.Identity) ([]byte, error) {
	if sha256.Sum256(ciphertext) != commitment {
		return nil, ErrCommitment
	}
	r, err := age.Decrypt(bytes.NewReader(ciphertext), ids...)
	if err != nil {
		return nil, fmt.Errorf("wallet: decrypting: %w", err)
	}
	return io.ReadAll(io.LimitReader(r, state.MaxPrivateBytes))
}

// EncryptionKeySet registers or rotates a member's or identity's encryption key.
func EncryptionKeySet(h Header, op state.EncryptionKeySet) (state.TxBody, error) {
	var err error
	switch {
	case (op.Member == "") == (op.Identity == ""):
		err = fmt.Errorf("%w: name exactly one of a member and an identity", state.ErrBadField)
	case !state.ValidEncryptionKey(op.Key):
		err = fmt.Errorf("%w: %q is not an age X25519 recipient", state.ErrBadField, op.Key)
	}
	return build(h, err, func(b *state.TxBody) { b.EncryptionKeySet = &op })
}

func checkPrivate(p *state.PrivateSend) error {
	switch {
	case len(p.Recipients) == 0 || len(p.Recipients) > state.MaxPrivateRecipients:
		return fmt.Errorf("%w: 1..%d recipients", state.ErrBadField, state.MaxPrivateRecipients)
	case p.Size == 0 || p.Size > state.MaxPrivateBytes:
		return fmt.Errorf("%w: ciphertext of %d bytes", state.ErrBadField, p.Size)
	}
	return nil
}

// PrivateSend records a private payload's commitment for its recipients.
func PrivateSend(h Header, op state.PrivateSend) (state.TxBody, error) {
	return build(h, checkPrivate(&op), func(b *state.TxBody) { b.PrivateSend = &op })
}

// PrivateEscrowCreate opens an escrow whose terms are a private payload.
func PrivateEscrowCreate(h Header, op state.PrivateEscrowCreate) (state.TxBody, error) {
	err := errors.Join(CheckID(op.ID), checkPrivate(&op.Private), checkTo(h, op.Beneficiary))
	return build(h, err, func(b *state.TxBody) { b.PrivateEscrowCreate = &op })
}

// PrivateEscrowClose releases or refunds a private escrow.
func PrivateEscrowClose(h Header, op state.PrivateEscrowClose) (state.TxBody, error) {
	return build(h, CheckID(op.ID), func(b *state.TxBody) { b.PrivateEscrowClose = &op })
}

// PrivateClaimIssue issues a claim whose content is a private payload.
func PrivateClaimIssue(h Header, op state.PrivateClaimIssue) (state.TxBody, error) {
	err := errors.Join(CheckID(op.ID), CheckID(op.Issuer), CheckID(op.Subject), checkPrivate(&op.Private))
	return build(h, err, func(b *state.TxBody) { b.PrivateClaimIssue = &op })
}
