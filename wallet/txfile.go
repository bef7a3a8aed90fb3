package wallet

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"

	"github.com/guild-ledger/guild/state"
)

// A transaction file carries a transaction from the officer who builds it to the others who
// co-sign it offline (`guild tx sign`), and then to a node (`guild tx submit`). It is JSON:
//
//	{
//	  "format": "guild-tx/1",
//	  "chain_id": "...", "from": "guild...", "nonce": 4,      // copied from the body, to read
//	  "operation": {"AssetTransfer": {...}},                  // the body's operation, to read
//	  "body": "<hex of the canonical CBOR TxBody>",           // what is signed: authoritative
//	  "hash_to_sign": "<hex SHA-256 of the sign bytes>",       // to compare between officers
//	  "signatures": [{"pub_key": "<hex>", "sig": "<hex>"}]
//	}
//
// Only body and signatures are read back: the rest is derived from body on every write, so an
// edit to them is ignored rather than believed. Reading checks that body is canonical and that
// every signature verifies over it, so a file that was tampered with after a signature was made
// is refused.

// TxFileFormat names the file format version.
const TxFileFormat = "guild-tx/1"

// maxTxFileBytes bounds what ReadTxFile reads: a transaction is at most state.MaxTxBytes, in hex,
// plus the readable copy.
const maxTxFileBytes = 8*state.MaxTxBytes + 64<<10

// ErrBadTxFile is a transaction file that cannot be used: malformed, or a signature that does
// not verify.
var ErrBadTxFile = errors.New("wallet: bad transaction file")

type txFileJSON struct {
	Format     string            `json:"format"`
	ChainID    string            `json:"chain_id"`
	From       string            `json:"from"`
	Nonce      uint64            `json:"nonce"`
	Operation  map[string]any    `json:"operation"`
	Body       string            `json:"body"`
	HashToSign string            `json:"hash_to_sign"`
	Signatures []txFileSignature `json:"signatures"`
}

type txFileSignature struct {
	PubKey  string `json:"pub_key"`
	Address string `json:"address"` // of the key: informational
	Sig     string `json:"sig"`
}

// Operation returns the name of the body's operation field (e.g. "AssetTransfer") and its value.
func Operation(b *state.TxBody) (string, any) {
	v := reflect.ValueOf(b).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			return t.Field(i).Name, f.Interface()
		}
	}
	return "", nil
}

// SignHash is the SHA-256 of tx's sign bytes: officers comparing it know they sign the same thing.
func SignHash(b *state.TxBody) (state.Hash, error) {
	msg, err := state.SignBytes(b.ChainID, b)
	if err != nil {
		return state.Hash{}, err
	}
	return state.HashTx(msg), nil
}

// MarshalTxFile encodes tx (signed by none, some or all of its signers) as a transaction file.
func MarshalTxFile(tx *state.Tx) ([]byte, error) {
	body, err := state.Marshal(&tx.Body)
	if err != nil {
		return nil, fmt.Errorf("wallet: encoding transaction body: %w", err)
	}
	sh, err := SignHash(&tx.Body)
	if err != nil {
		return nil, err
	}
	name, op := Operation(&tx.Body)
	f := txFileJSON{
		Format: TxFileFormat, ChainID: tx.Body.ChainID, From: tx.Body.From.String(), Nonce: tx.Body.Nonce,
		Operation: map[string]any{name: op}, Body: hex.EncodeToString(body), HashToSign: sh.String(),
		Signatures: []txFileSignature{},
	}
	for _, s := range tx.Sigs {
		f.Signatures = append(f.Signatures, txFileSignature{
			PubKey: hex.EncodeToString(s.PubKey), Sig: hex.EncodeToString(s.Sig),
			Address: state.AddressFromPubKey(s.PubKey).String(),
		})
	}
	out, err := json.MarshalIndent(f, "", "  ")
	return append(out, '\n'), err
}

// UnmarshalTxFile reads a transaction file and checks it: known format, canonical body with one
// operation, every signature by a distinct key and valid over the body.
func UnmarshalTxFile(data []byte) (*state.Tx, error) {
	var f txFileJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTxFile, err)
	}
	if f.Format != TxFileFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBadTxFile, f.Format, TxFileFormat)
	}
	raw, err := hex.DecodeString(f.Body)
	if err != nil || len(raw) == 0 || len(raw) > state.MaxTxBytes {
		return nil, fmt.Errorf("%w: body must be 1..%d bytes of hex", ErrBadTxFile, state.MaxTxBytes)
	}
	tx := &state.Tx{}
	if err := state.Unmarshal(raw, &tx.Body); err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrBadTxFile, err)
	}
	if again, err := state.Marshal(&tx.Body); err != nil || !bytes.Equal(again, raw) {
		return nil, fmt.Errorf("%w: body is not in canonical encoding", ErrBadTxFile)
	}
	if name, _ := Operation(&tx.Body); name == "" {
		return nil, fmt.Errorf("%w: body has no operation", ErrBadTxFile)
	}
	if len(f.Signatures) > state.MaxSigners {
		return nil, fmt.Errorf("%w: %d signatures, at most %d", ErrBadTxFile, len(f.Signatures), state.MaxSigners)
	}
	msg, err := state.SignBytes(tx.Body.ChainID, &tx.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTxFile, err)
	}
	for i, s := range f.Signatures {
		pub, err1 := hex.DecodeString(s.PubKey)
		sig, err2 := hex.DecodeString(s.Sig)
		if err1 != nil || err2 != nil || len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: signature %d is not a hex key and signature", ErrBadTxFile, i+1)
		}
		if !ed25519.Verify(pub, msg, sig) {
			return nil, fmt.Errorf("%w: signature %d (by %s) does not match the body: the file was changed after it was signed",
				ErrBadTxFile, i+1, state.AddressFromPubKey(pub))
		}
		for _, t := range tx.Sigs {
			if bytes.Equal(t.PubKey, pub) {
				return nil, fmt.Errorf("%w: two signatures by %s", ErrBadTxFile, state.AddressFromPubKey(pub))
			}
		}
		tx.Sigs = append(tx.Sigs, state.Signature{PubKey: pub, Sig: sig})
	}
	return tx, nil
}

// WriteTxFile writes tx to path atomically (a reader never sees half a file).
func WriteTxFile(path string, tx *state.Tx) error {
	data, err := MarshalTxFile(tx)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("wallet: writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("wallet: writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("wallet: writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

// ReadTxFile reads and checks a transaction file (see UnmarshalTxFile).
func ReadTxFile(path string) (*state.Tx, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("wallet: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("wallet: reading %s: %w", path, err)
	}
	if len(data) > maxTxFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadTxFile, path, maxTxFileBytes)
	}
	tx, err := UnmarshalTxFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tx, nil
}
