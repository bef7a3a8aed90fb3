package state

import (
	"errors"
	"fmt"
)

// HashList is a list of hashes with hand-written CBOR: an array of 32-byte byte strings, the
// codec's encoding of []Hash byte for byte. The codec fills a [32]byte through reflection one
// byte at a time: decoding the 1,440 hashes of a proposal by reference took ~0.3 ms, on every
// validator, for every proposal.
type HashList []Hash

// ErrHashList is a CBOR item that is not an array of 32-byte byte strings.
var ErrHashList = errors.New("state: not an array of 32-byte hashes")

// hashItem is the head of a 32-byte byte string (major type 2, one-byte length).
const hashItemHead0, hashItemHead1 = 0x58, 32

// MarshalCBOR writes the array as the codec writes a []Hash: shortest heads, each hash a byte string.
func (l HashList) MarshalCBOR() ([]byte, error) {
	if l == nil {
		return []byte{0xf6}, nil // the codec's nil slice: null
	}
	out := AppendCBORHead(make([]byte, 0, 9+len(l)*(2+len(Hash{}))), 4, uint64(len(l)))
	for i := range l {
		out = append(out, hashItemHead0, hashItemHead1)
		out = append(out, l[i][:]...)
	}
	return out, nil
}

// UnmarshalCBOR reads what MarshalCBOR writes (null as nil). Anything else, a hash of another
// length among it, is refused with ErrHashList: no honest encoder writes it.
func (l *HashList) UnmarshalCBOR(data []byte) error {
	if len(data) == 1 && data[0] == 0xf6 {
		*l = nil
		return nil
	}
	n, k, ok := readCBORHead(data, 4)
	if !ok {
		return fmt.Errorf("%w: not an array", ErrHashList)
	}
	rest := data[k:]
	const item = 2 + len(Hash{})
	// Bounds the allocation by the input: each hash takes item bytes.
	if n > maxArrayElements || n != uint64(len(rest)/item) || len(rest)%item != 0 {
		return fmt.Errorf("%w: %d elements in %d bytes", ErrHashList, n, len(rest))
	}
	out := make(HashList, n)
	for i := range out {
		if rest[0] != hashItemHead0 || rest[1] != hashItemHead1 {
			return fmt.Errorf("%w: element %d is not a 32-byte byte string", ErrHashList, i)
		}
		copy(out[i][:], rest[2:item])
		rest = rest[item:]
	}
	*l = out
	return nil
}
