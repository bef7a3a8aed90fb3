// Package wallet keeps account keys encrypted at rest and builds, signs and submits transactions.
//
// A keystore is a directory with one JSON file per key, DIR/<name>.json, mode 0600:
//
//	{
//	  "name": "alice",
//	  "address": "guild…",             // checksummed, derived from public_key
//	  "public_key": "<64 hex>",        // ed25519
//	  "encrypted_key": "-----BEGIN AGE ENCRYPTED FILE-----…"
//	}
//
// encrypted_key is the 64-byte ed25519 private key (seed ‖ public key) encrypted with age to a
// passphrase (scrypt recipient), ASCII-armored. The public half stays in the clear so that
// addresses can be listed without a passphrase; Load checks that the decrypted key matches it.
package wallet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/guild-ledger/guild/state"
)

var (
	ErrKeyNotFound     = errors.New("wallet: key not found")
	ErrKeyExists       = errors.New("wallet: key already exists")
	ErrBadPassphrase   = errors.New("wallet: wrong passphrase")
	ErrBadName         = errors.New("wallet: bad key name")
	ErrEmptyPassphrase = errors.New("wallet: empty passphrase")
	// ErrCorruptKey is a key file that does not parse or does not agree with itself: it was
	// damaged or tampered with. Restore it from a backup.
	ErrCorruptKey = errors.New("wallet: key file is corrupt or was tampered with")
)

const (
	fileExt = ".json"
	// maxKeyFileBytes bounds what we read: a key file is well under 1 KiB.
	maxKeyFileBytes = 64 << 10
	// defaultMaxWorkFactor is age's own cap on the scrypt work a file may demand when decrypting.
	defaultMaxWorkFactor = 22
)

// Entry is the public part of a stored key.
type Entry struct {
	Name    string            `json:"name"`
	Address state.Address     `json:"address"`
	PubKey  ed25519.PublicKey `json:"-"`
}

// Keystore is a directory of passphrase-encrypted keys. Its methods are safe for concurrent use
// by several goroutines and processes: files are written once, atomically, and never replaced.
type Keystore struct {
	Dir string
	// WorkFactor is the log2 scrypt work factor for new keys; 0 means age's default (18, about a
	// second). Tests use ~10. Existing keys keep the factor they were written with.
	WorkFactor int
}

// keyFile is the on-disk form of one key; see the package comment.
type keyFile struct {
	Name         string        `json:"name"`
	Address      state.Address `json:"address"`
	PublicKey    string        `json:"public_key"`
	EncryptedKey string        `json:"encrypted_key"`
}

// Open returns the keystore in dir, creating the directory (mode 0700) if it is missing.
func Open(dir string) (*Keystore, error) {
	if dir == "" {
		return nil, errors.New("wallet: empty keystore directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wallet: creating keystore: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("wallet: opening keystore: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("wallet: keystore %s is not a directory", dir)
	}
	return &Keystore{Dir: dir}, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// CheckName reports whether name may name a key: 1 to 64 characters of a-z, 0-9, '_' and '-',
// starting with a letter or digit, so it is a safe file name everywhere. A name that is itself a
// valid address is refused, so that "NAME or ADDRESS" arguments are never ambiguous.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w %q: use 1-64 characters a-z, 0-9, '_' or '-', starting with a letter or digit", ErrBadName, name)
	}
	if _, err := state.ParseAddress(name); err == nil {
		return fmt.Errorf("%w %q: a key name must not be an address", ErrBadName, name)
	}
	return nil
}

func (k *Keystore) path(name string) string { return filepath.Join(k.Dir, name+fileExt) }

// Create makes a new ed25519 key, stores it encrypted under passphrase, and returns its entry.
func (k *Keystore) Create(name, passphrase string) (Entry, error) {
	if err := k.checkNew(name, passphrase); err != nil {
		return Entry{}, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Entry{}, fmt.Errorf("wallet: generating key: %w", err)
	}
	return k.Import(name, priv, passphrase)
}

// Import stores an existing private key under name, encrypted under passphrase. It never
// replaces a stored key: a name in use gives ErrKeyExists.
func (k *Keystore) Import(name string, priv ed25519.PrivateKey, passphrase string) (Entry, error) {
	if err := k.checkNew(name, passphrase); err != nil {
		return Entry{}, err
	}
	// An ed25519.PrivateKey is seed ‖ public key; a slice whose halves disagree would sign with
	// one key and claim another.
	if len(priv) != ed25519.PrivateKeySize || !bytes.Equal(ed25519.NewKeyFromSeed(priv.Seed()), priv) {
		return Entry{}, errors.New("wallet: not a valid ed25519 private key")
	}
	pub := bytes.Clone(priv[ed25519.SeedSize:])

	rcpt, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return Entry{}, fmt.Errorf("wallet: %w", err)
	}
	if k.WorkFactor > 0 {
		rcpt.SetWorkFactor(k.WorkFactor)
	}
	var ct bytes.Buffer
	aw := armor.NewWriter(&ct)
	w, err := age.Encrypt(aw, rcpt)
	if err != nil {
		return Entry{}, fmt.Errorf("wallet: encrypting key: %w", err)
	}
	if _, err := w.Write(priv); err != nil {
		return Entry{}, fmt.Errorf("wallet: encrypting key: %w", err)
	}
	if err := w.Close(); err != nil {
		return Entry{}, fmt.Errorf("wallet: encrypting key: %w", err)
	}
	if err := aw.Close(); err != nil {
		return Entry{}, fmt.Errorf("wallet: encrypting key: %w", err)
	}

	e := Entry{Name: name, Address: state.AddressFromPubKey(pub), PubKey: pub}
	data, err := json.MarshalIndent(keyFile{
		Name:         name,
		Address:      e.Address,
		PublicKey:    hex.EncodeToString(pub),
		EncryptedKey: ct.String(),
	}, "", "  ")
	if err != nil {
		return Entry{}, err
	}
	if err := k.writeNew(name, append(data, '\n')); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// checkNew does the cheap checks before the scrypt work of encrypting.
func (k *Keystore) checkNew(name, passphrase string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if passphrase == "" {
		return ErrEmptyPassphrase
	}
	if k.WorkFactor < 0 || k.WorkFactor > 30 {
		return fmt.Errorf("wallet: scrypt work factor %d out of range 1..30", k.WorkFactor)
	}
	if _, err := os.Lstat(k.path(name)); err == nil {
		return fmt.Errorf("%w: %q in %s", ErrKeyExists, name, k.Dir)
	}
	return nil
}

// writeNew stores data as the key file for name, atomically and only if no such file exists:
// the data goes to a temporary file that is then hard-linked into place, which fails rather than
// replaces when the name was taken in the meantime (rename would silently overwrite).
func (k *Keystore) writeNew(name string, data []byte) error {
	final := k.path(name)
	f, err := os.CreateTemp(k.Dir, "."+name+".*.tmp") // created with mode 0600
	if err != nil {
		return fmt.Errorf("wallet: writing key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful link this removes only the temporary name
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("wallet: writing key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("wallet: writing key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("wallet: writing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("wallet: writing key: %w", err)
	}
	err = os.Link(tmp, final)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %q in %s", ErrKeyExists, name, k.Dir)
	default:
		// A file system without hard links: check, then rename. Only a concurrent writer of the
		// same name in the instant between the two could be overwritten.
		if _, serr := os.Lstat(final); serr == nil {
			return fmt.Errorf("%w: %q in %s", ErrKeyExists, name, k.Dir)
		}
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("wallet: writing key: %w", err)
		}
	}
	syncDir(k.Dir)
	return nil
}

// syncDir makes a new directory entry durable. Not every platform can sync a directory; the key
// file itself is already synced, so failure here is not worth failing the write for.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// read parses and checks the key file for name, without decrypting anything.
func (k *Keystore) read(name string) (keyFile, ed25519.PublicKey, error) {
	if err := CheckName(name); err != nil {
		return keyFile{}, nil, err
	}
	p := k.path(name)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return keyFile{}, nil, fmt.Errorf("%w: %q in %s", ErrKeyNotFound, name, k.Dir)
	}
	if err != nil {
		return keyFile{}, nil, fmt.Errorf("wallet: reading key: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return keyFile{}, nil, fmt.Errorf("wallet: reading key: %w", err)
	}
	if len(data) > maxKeyFileBytes {
		return keyFile{}, nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorruptKey, p, maxKeyFileBytes)
	}
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return keyFile{}, nil, fmt.Errorf("%w: %s: %v", ErrCorruptKey, p, err)
	}
	if kf.Name != name {
		return keyFile{}, nil, fmt.Errorf("%w: %s holds key %q", ErrCorruptKey, p, kf.Name)
	}
	pub, err := hex.DecodeString(kf.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return keyFile{}, nil, fmt.Errorf("%w: %s: public_key is not 32 bytes of hex", ErrCorruptKey, p)
	}
	if state.AddressFromPubKey(pub) != kf.Address {
		return keyFile{}, nil, fmt.Errorf("%w: %s: address does not match public_key", ErrCorruptKey, p)
	}
	if kf.EncryptedKey == "" {
		return keyFile{}, nil, fmt.Errorf("%w: %s: encrypted_key is missing", ErrCorruptKey, p)
	}
	return kf, pub, nil
}

// Get returns the public part of the key name; it needs no passphrase.
func (k *Keystore) Get(name string) (Entry, error) {
	kf, pub, err := k.read(name)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Name: kf.Name, Address: kf.Address, PubKey: pub}, nil
}

// Load decrypts the private key name. A wrong passphrase gives ErrBadPassphrase; a file that
// decrypts to a key other than the one it names gives ErrCorruptKey.
func (k *Keystore) Load(name, passphrase string) (ed25519.PrivateKey, error) {
	kf, pub, err := k.read(name)
	if err != nil {
		return nil, err
	}
	if passphrase == "" {
		return nil, fmt.Errorf("%w for key %q: passphrase is empty", ErrBadPassphrase, name)
	}
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("wallet: %w", err)
	}
	id.SetMaxWorkFactor(max(defaultMaxWorkFactor, k.WorkFactor))
	p := k.path(name)
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(kf.EncryptedKey)), id)
	if errors.Is(err, age.ErrIncorrectIdentity) {
		// age cannot tell a wrong passphrase from a damaged wrapped key; the first is far likelier.
		return nil, fmt.Errorf("%w for key %q", ErrBadPassphrase, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptKey, p, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, ed25519.PrivateKeySize+1))
	defer clear(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptKey, p, err)
	}
	if len(plain) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: %s: decrypted key is %d bytes, want %d", ErrCorruptKey, p, len(plain), ed25519.PrivateKeySize)
	}
	priv := ed25519.NewKeyFromSeed(plain[:ed25519.SeedSize])
	if !bytes.Equal(priv, plain) || !bytes.Equal(priv.Public().(ed25519.PublicKey), pub) {
		return nil, fmt.Errorf("%w: %s: decrypted key does not match public_key", ErrCorruptKey, p)
	}
	return priv, nil
}

// List returns every key in the keystore, sorted by name. Files that are not key files (other
// extensions, temporary files) are ignored; a damaged key file is an error.
func (k *Keystore) List() ([]Entry, error) {
	des, err := os.ReadDir(k.Dir)
	if err != nil {
		return nil, fmt.Errorf("wallet: listing keys: %w", err)
	}
	entries := []Entry{}
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), fileExt)
		if !ok || !de.Type().IsRegular() || CheckName(name) != nil {
			continue
		}
		e, err := k.Get(name)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	return entries, nil
}
