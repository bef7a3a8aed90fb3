package wallet

import (
	"sync"
	"testing"
	"time"

	"github.com/guild-ledger/guild/state"
)

func testBook(t *testing.T) (*NonceBook, *time.Time) {
	t.Helper()
	ks, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_700_000_000_000)
	b := ks.Nonces()
	b.now = func() time.Time { return now }
	return b, &now
}

func TestNonceBookTakesTheLargerOfNodeAndRecord(t *testing.T) {
	b, now := testBook(t)
	var a state.Address
	a[0] = 1
	steps := []struct {
		nodeNext uint64
		want     uint64
		fromBook bool
		advance  time.Duration
	}{
		{nodeNext: 0, want: 0},                 // nothing recorded: the node's
		{nodeNext: 0, want: 1, fromBook: true}, // the node has not seen nonce 0 yet (another node has)
		{nodeNext: 1, want: 2, fromBook: true},
		{nodeNext: 5, want: 5},                           // the node is ahead (another wallet signed)
		{nodeNext: 3, want: 3, advance: 3 * time.Minute}, // record stale: nonce 5 was lost, trust the node
		{nodeNext: 3, want: 4, fromBook: true},
	}
	for i, s := range steps {
		*now = now.Add(s.advance)
		got, fromBook, err := b.Reserve("chain-a", a, s.nodeNext, nil, nil)
		if err != nil || got != s.want || fromBook != s.fromBook {
			t.Fatalf("step %d: Reserve(node next %d) = %d, %v, %v; want %d, %v", i, s.nodeNext, got, fromBook, err, s.want, s.fromBook)
		}
	}
	// Another chain and another account are separate.
	if got, _, _ := b.Reserve("chain-b", a, 0, nil, nil); got != 0 {
		t.Fatalf("other chain: %d, want 0", got)
	}
}

func TestNonceBookOverrideAndRelease(t *testing.T) {
	b, _ := testBook(t)
	var a state.Address
	seven := uint64(7)
	if got, _, _ := b.Reserve("c", a, 0, &seven, nil); got != 7 {
		t.Fatalf("override: %d", got)
	}
	if got, _, _ := b.Reserve("c", a, 0, nil, nil); got != 8 {
		t.Fatalf("after override: %d, want 8", got)
	}
	// The node refused nonce 8: releasing it lets the next command use it again.
	if err := b.Release("c", a, 8); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Reserve("c", a, 0, nil, nil); got != 8 {
		t.Fatalf("after release: %d, want 8", got)
	}
	// A release of a nonce that is no longer the last changes nothing.
	if err := b.Release("c", a, 3); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Reserve("c", a, 0, nil, nil); got != 9 {
		t.Fatalf("after stale release: %d, want 9", got)
	}
	// An explicit lower nonce (re-sending a lost one) does not move the record back.
	two := uint64(2)
	if got, _, _ := b.Reserve("c", a, 0, &two, nil); got != 2 {
		t.Fatalf("lower override: %d", got)
	}
	if got, _, _ := b.Reserve("c", a, 0, nil, nil); got != 10 {
		t.Fatalf("after lower override: %d, want 10", got)
	}
}

func TestNonceBookConcurrentReservesNeverRepeat(t *testing.T) {
	b, _ := testBook(t)
	var a state.Address
	const n = 40
	got := make(chan uint64, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each goroutine reads the book with its own handle, as separate commands would.
			other := &NonceBook{path: b.path, now: b.now}
			v, _, err := other.Reserve("c", a, 0, nil, nil)
			if err != nil {
				t.Error(err)
			}
			got <- v
		}()
	}
	wg.Wait()
	close(got)
	seen := map[uint64]bool{}
	for v := range got {
		if seen[v] {
			t.Fatalf("nonce %d handed out twice", v)
		}
		seen[v] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct nonces, want %d", len(seen), n)
	}
}

func TestNonceBookIsNotAKey(t *testing.T) {
	b, _ := testBook(t)
	var a state.Address
	if _, _, err := b.Reserve("c", a, 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	ks, _ := Open(b.path[:len(b.path)-len(NonceBookFile)-1])
	if keys, err := ks.List(); err != nil || len(keys) != 0 {
		t.Fatalf("List = %v, %v; the nonce book must not look like a key", keys, err)
	}
}

func TestNonceBookReusesARejectedNonce(t *testing.T) {
	b, _ := testBook(t)
	var a state.Address
	if got, _, _ := b.Reserve("c", a, 4, nil, nil); got != 4 {
		t.Fatalf("first: %d", got)
	}
	if err := b.Signed("c", a, 4, "aa"); err != nil {
		t.Fatal(err)
	}
	asked := ""
	rejected := func(h string) bool { asked = h; return true }
	// The node still says 4: the transaction signed with 4 was rejected in its block, which uses
	// no nonce, so 4 is free again rather than leaving a gap at 4.
	if got, fromBook, _ := b.Reserve("c", a, 4, nil, rejected); got != 4 || !fromBook || asked != "aa" {
		t.Fatalf("after rejection: %d (from book %v, asked %q), want 4", got, fromBook, asked)
	}
	// Not rejected (pending on another node): the next one.
	if got, _, _ := b.Reserve("c", a, 4, nil, func(string) bool { return false }); got != 5 {
		t.Fatalf("pending elsewhere: %d, want 5", got)
	}
}
