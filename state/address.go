package state

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// AddressLen is the length of an account address in bytes.
const AddressLen = 20

// AddressPrefix starts the text form of every address, so a Guild address is never mistaken for a
// hash or a key.
const AddressPrefix = "guild"

// Address identifies an account: the first 20 bytes of SHA-256 over its ed25519 public key.
type Address [AddressLen]byte

var (
	ErrBadAddress         = errors.New("state: malformed address")
	ErrAddressChecksum    = errors.New("state: address checksum mismatch (mistyped address?)")
	ErrBadPublicKey       = errors.New("state: public key must be 32 bytes of ed25519")
	errAddressPrefixShort = fmt.Errorf("%w: must start with %q", ErrBadAddress, AddressPrefix)
)

// AddressFromPubKey derives the account address bound to an ed25519 public key.
func AddressFromPubKey(pub ed25519.PublicKey) Address {
	sum := sha256.Sum256(pub)
	var a Address
	copy(a[:], sum[:AddressLen])
	return a
}

// checksum is 4 bytes of a domain-separated hash of the address, so one mistyped character is
// caught before funds go to an address nobody holds.
func (a Address) checksum() []byte {
	h := sha256.New()
	h.Write([]byte("guild/address-checksum/v1"))
	h.Write(a[:])
	return h.Sum(nil)[:4]
}

// String gives the checksummed text form: "guild" ‖ hex(address) ‖ hex(checksum), 53 characters.
func (a Address) String() string {
	return AddressPrefix + hex.EncodeToString(a[:]) + hex.EncodeToString(a.checksum())
}

// IsZero reports whether a is the all-zero address.
func (a Address) IsZero() bool { return a == Address{} }

// ParseAddress reads the text form made by String, checking its checksum. Hex is case-insensitive.
func ParseAddress(s string) (Address, error) {
	var a Address
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(strings.ToLower(s), AddressPrefix) {
		return a, errAddressPrefixShort
	}
	body := s[len(AddressPrefix):]
	if len(body) != 2*(AddressLen+4) {
		return a, fmt.Errorf("%w: want %d characters, got %d", ErrBadAddress, len(AddressPrefix)+2*(AddressLen+4), len(s))
	}
	raw, err := hex.DecodeString(body)
	if err != nil {
		return a, fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	copy(a[:], raw[:AddressLen])
	if !bytes.Equal(raw[AddressLen:], a.checksum()) {
		return Address{}, ErrAddressChecksum
	}
	return a, nil
}

// MarshalText makes addresses print in their checksummed form in JSON and TOML.
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText parses the checksummed form.
func (a *Address) UnmarshalText(b []byte) error {
	p, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}
