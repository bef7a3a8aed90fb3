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

// ErrByteStrings is a CBOR item that is not one definite-length array of byte strings.
var ErrByteStrings = errors.New("state: not an array of byte strings")

// SplitByteStrings reads data as one definite-length CBOR array of at most max definite-length
// byte strings, with nothing after it: a batch of transactions as gossip and the binary
// submission carry them. It returns the strings as sub-slices of data (each capped, so an append
// copies), without copying: the caller must not change data afterwards. The codec decoding the
// same into a [][]byte allocated and copied every transaction, ~180 ns each on every validator;
// this refuses, with ErrByteStrings, anything else it would have taken (another item type,
// indefinite lengths), which no encoder of batches writes.
func SplitByteStrings(data []byte, max int) ([][]byte, error) {
	n, k, ok := readCBORHead(data, 4)
	if !ok {
		return nil, fmt.Errorf("%w: not a definite-length array", ErrByteStrings)
	}
	rest := data[k:]
	// Each element takes a byte at least: this bounds the allocation by the input.
	if n > uint64(max) || n > uint64(len(rest)) {
		return nil, fmt.Errorf("%w: %d elements, at most %d in %d bytes", ErrByteStrings, n, max, len(rest))
	}
	out := make([][]byte, n)
	for i := range out {
		l, k, ok := readCBORHead(rest, 2)
		if !ok || l > uint64(len(rest)-k) {
			return nil, fmt.Errorf("%w: element %d is not a definite-length byte string within the data", ErrByteStrings, i)
		}
		end := k + int(l)
		out[i] = rest[k:end:end]
		rest = rest[end:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the array", ErrByteStrings, len(rest))
	}
	return out, nil
}
