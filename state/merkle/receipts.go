package merkle

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Receipts.
//
// A block's receipts are the RFC 6962 Merkle tree (SHA-256, leaf hash SHA-256(0x00 ‖ leaf),
// node hash SHA-256(0x01 ‖ left ‖ right)) over one leaf per transaction, in block order:
//
//	leaf = tx hash (32 bytes) ‖ status (1 byte: 0x00 applied, 0x01 rejected)
//
// and its root is zero for a block without transactions. Only whether a transaction applied is
// committed to, not why it was rejected: the reason is an error message, and making its wording
// part of consensus would fork the chain at the first reworded message.

// Receipt statuses.
const (
	StatusApplied  byte = 0
	StatusRejected byte = 1
)

// ReceiptLeaf is the leaf of a transaction's receipt.
func ReceiptLeaf(tx Hash, applied bool) []byte {
	leaf := make([]byte, 33)
	copy(leaf, tx[:])
	if !applied {
		leaf[32] = StatusRejected
	}
	return leaf
}

// ReceiptsRoot is the root over the leaves (zero for none).
func ReceiptsRoot(leaves [][]byte) Hash {
	var out Hash
	if len(leaves) == 0 {
		return out
	}
	hashes := make([][]byte, len(leaves))
	for i, l := range leaves {
		hashes[i] = rfc6962.DefaultHasher.HashLeaf(l)
	}
	copy(out[:], mth(hashes))
	return out
}

// mth is RFC 6962's MTH over leaf hashes (at least one).
func mth(hs [][]byte) []byte {
	if len(hs) == 1 {
		return hs[0]
	}
	k := split(len(hs))
	return rfc6962.DefaultHasher.HashChildren(mth(hs[:k]), mth(hs[k:]))
}

// split is the largest power of two smaller than n (n >= 2).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// ReceiptPath is RFC 6962's audit path of leaf index, from the leaf up.
func ReceiptPath(leaves [][]byte, index int) ([]Hash, error) {
	if index < 0 || index >= len(leaves) {
		return nil, fmt.Errorf("%w: leaf %d of %d", ErrMalformed, index, len(leaves))
	}
	hashes := make([][]byte, len(leaves))
	for i, l := range leaves {
		hashes[i] = rfc6962.DefaultHasher.HashLeaf(l)
	}
	var path []Hash
	var walk func(hs [][]byte, m int)
	walk = func(hs [][]byte, m int) {
		if len(hs) == 1 {
			return
		}
		k := split(len(hs))
		var sib Hash
		if m < k {
			walk(hs[:k], m)
			copy(sib[:], mth(hs[k:]))
		} else {
			walk(hs[k:], m-k)
			copy(sib[:], mth(hs[:k]))
		}
		path = append(path, sib)
	}
	walk(hashes, index)
	return path, nil
}

// VerifyReceipt checks that the transaction tx with the given status is leaf index of size
// leaves under root, by path.
func VerifyReceipt(root Hash, index, size uint64, tx Hash, applied bool, path []Hash) error {
	if size == 0 || index >= size {
		return fmt.Errorf("%w: receipt %d of %d", ErrMalformed, index, size)
	}
	p := make([][]byte, len(path))
	for i := range path {
		p[i] = path[i][:]
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(ReceiptLeaf(tx, applied))
	err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaf, p, root[:])
	var mismatch proof.RootMismatchError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mismatch):
		return fmt.Errorf("%w: receipt: %v", ErrPathMismatch, err)
	}
	return fmt.Errorf("%w: receipt: %v", ErrMalformed, err)
}
