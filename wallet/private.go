package wallet

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/guild-ledger/guild/state"
)

// Private payloads (issue 14). A wallet key may have X25519 encryption identities (age), kept
// beside it, encrypted under the same kind of passphrase:
//
//	DIR/enc/<name>.<version>.json  {"name", "version", "recipient": "age1…", "encrypted_identity": "-----BEGIN AGE…"}
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

// NewEncryptionKey makes a new X25519 identity for name (the first, or a rotation), stores it
// encrypted under passphrase, and returns its recipient to register on chain.
func (k *Keystore) NewEncryptionKey(name, passphrase string) (string, error) {
	if _, err := k.Get(name); err != nil {
		return "", err
	}
	if passphrase == "" {
		return "", ErrEmptyPassphrase
	}
	fs, err := k.encFiles(name)
	if err != nil {
		return "", err
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", fmt.Errorf("wallet: generating encryption key: %w", err)
	}
	rcpt, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return "", fmt.Errorf("wallet: %w", err)
	}
	if k.WorkFactor > 0 {
		rcpt.SetWorkFactor(k.WorkFactor)
	}
	var ct bytes.Buffer
	aw := armor.NewWriter(&ct)
	w, err := age.Encrypt(aw, rcpt)
	if err == nil {
		_, err = io.WriteString(w, id.String())
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = aw.Close()
	}
	if err != nil {
		return "", fmt.Errorf("wallet: encrypting encryption key: %w", err)
	}
	version := len(fs) + 1
	data, err := json.MarshalIndent(encFile{Name: name, Version: version, Recipient: id.Recipient().String(),
		EncryptedIdentity: ct.String()}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(k.encDir(), 0o700); err != nil {
		return "", err
	}
	p := filepath.Join(k.encDir(), fmt.Sprintf("%s.%d.json", name, version))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("wallet: writing encryption key: %w", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return "", fmt.Errorf("wallet: writing encryption key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	syncDir(k.encDir())
	return id.Recipient().String(), nil
}

// EncryptionIdentities decrypts name's encryption identities (every version).
func (k *Keystore) EncryptionIdentities(name, passphrase string) ([]age.Identity, error) {
	fs, err := k.encFiles(name)
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("%w %q: create one with `guild private key set`", ErrNoEncryptionKey, name)
	}
	sid, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("wallet: %w", err)
	}
	sid.SetMaxWorkFactor(max(defaultMaxWorkFactor, k.WorkFactor))
	var out []age.Identity
	for _, f := range fs {
		r, err := age.Decrypt(armor.NewReader(strings.NewReader(f.EncryptedIdentity)), sid)
		if errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, fmt.Errorf("%w for the encryption key of %q", ErrBadPassphrase, name)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: encryption key %d of %q: %v", ErrCorruptKey, f.Version, name, err)
		}
		s, err := io.ReadAll(io.LimitReader(r, 1024))
		if err != nil {
			return nil, fmt.Errorf("%w: encryption key %d of %q: %v", ErrCorruptKey, f.Version, name, err)
		}
		id, err := age.ParseX25519Identity(string(s))
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
