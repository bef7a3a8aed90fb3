package state

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Limits on what a decoder accepts from the network, so a hostile peer cannot make a node allocate
// without bound or recurse deeply.
const (
	MaxTxBytes       = 4 << 10 // one transaction
	maxNestedLevels  = 8
	maxArrayElements = 1 << 16
	maxMapPairs      = 64
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	// Core deterministic encoding (RFC 8949 §4.2.1): the same value gives the same bytes everywhere,
	// which is what makes hashes and signatures reproducible.
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("state: cbor encoder options: %v", err))
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF, // duplicate keys would give two readings of one signature
		IndefLength:       cbor.IndefLengthForbidden, // not canonical
		MaxNestedLevels:   maxNestedLevels,
		MaxArrayElements:  maxArrayElements,
		MaxMapPairs:       maxMapPairs,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("state: cbor decoder options: %v", err))
	}
}

// Marshal encodes v with the deterministic encoding used for everything hashed or signed.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Unmarshal decodes b into v with the limits above, rejecting unknown fields and trailing bytes.
func Unmarshal(b []byte, v any) error {
	rest, err := decMode.UnmarshalFirst(b, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes", len(rest))
	}
	return nil
}
