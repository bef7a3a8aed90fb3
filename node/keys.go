package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// keyFile is the on-disk form of a node or validator key: plain hex, 0600, like CometBFT's
// priv_validator_key.json. The node must start unattended, so these are not passphrase-protected;
// wallet keys are.
type keyFile struct {
	Type    string `json:"type"`
	PubKey  string `json:"pub_key"`
	PrivKey string `json:"priv_key"`
}

// GenerateKeyFile makes a new ed25519 key and writes it to path, refusing to overwrite one.
func GenerateKeyFile(path string) (ed25519.PrivateKey, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("node: %s exists; refusing to overwrite a key", path)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return priv, WriteKeyFile(path, priv)
}

// WriteKeyFile stores priv at path with mode 0600.
func WriteKeyFile(path string, priv ed25519.PrivateKey) error {
	b, err := json.MarshalIndent(keyFile{
		Type:    "ed25519",
		PubKey:  hex.EncodeToString(priv.Public().(ed25519.PublicKey)),
		PrivKey: hex.EncodeToString(priv),
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// LoadKeyFile reads a key written by WriteKeyFile.
func LoadKeyFile(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node: reading key: %w", err)
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("node: parsing key %s: %w", path, err)
	}
	raw, err := hex.DecodeString(kf.PrivKey)
	if err != nil || kf.Type != "ed25519" || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("node: key %s is not an ed25519 private key", path)
	}
	priv := ed25519.PrivateKey(raw)
	if hex.EncodeToString(priv.Public().(ed25519.PublicKey)) != kf.PubKey {
		return nil, errors.New("node: key file's public key does not match its private key")
	}
	return priv, nil
}
