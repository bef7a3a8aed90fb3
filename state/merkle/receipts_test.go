package merkle

import (
	"errors"
	"testing"
)

// TestReceipts checks every receipt of trees of 1 to 40 leaves against the root, and that a
// wrong status, index, size or path fails.
func TestReceipts(t *testing.T) {
	if ReceiptsRoot(nil) != (Hash{}) {
		t.Fatal("empty receipts root is not zero")
	}
	for n := 1; n <= 40; n++ {
		var leaves [][]byte
		var txs []Hash
		for i := range n {
			tx := Hash{byte(i), byte(n)}
			txs = append(txs, tx)
			leaves = append(leaves, ReceiptLeaf(tx, i%3 != 0))
		}
		root := ReceiptsRoot(leaves)
		for i := range n {
			path, err := ReceiptPath(leaves, i)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyReceipt(root, uint64(i), uint64(n), txs[i], i%3 != 0, path); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			if err := VerifyReceipt(root, uint64(i), uint64(n), txs[i], i%3 == 0, path); !errors.Is(err, ErrPathMismatch) {
				t.Fatalf("n=%d i=%d: wrong status: %v", n, i, err)
			}
			if n > 1 {
				if err := VerifyReceipt(root, uint64((i+1)%n), uint64(n), txs[i], i%3 != 0, path); err == nil {
					t.Fatalf("n=%d i=%d: wrong index verifies", n, i)
				}
				path[0][0] ^= 1
				if err := VerifyReceipt(root, uint64(i), uint64(n), txs[i], i%3 != 0, path); !errors.Is(err, ErrPathMismatch) {
					t.Fatalf("n=%d i=%d: tampered path: %v", n, i, err)
				}
			}
		}
	}
}
