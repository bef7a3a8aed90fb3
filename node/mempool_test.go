package node

import (
	"errors"
	"strings"
	"testing"

	"github.com/guild-ledger/guild/state"
)

func pendingFor(from byte, nonce uint64, salt byte) ([]byte, state.Hash, *state.Tx) {
	var a state.Address
	a[0] = from
	raw := []byte{from, byte(nonce), byte(nonce >> 8), salt}
	return raw, state.HashTx(raw), &state.Tx{Body: state.TxBody{From: a, Nonce: nonce}}
}

func TestMempoolDedupesOrdersAndBounds(t *testing.T) {
	m := NewMempool(5)
	nonces := map[state.Address]uint64{}
	nonceOf := func(a state.Address) uint64 { return nonces[a] }
	add := func(from byte, nonce uint64, salt byte) error {
		raw, h, tx := pendingFor(from, nonce, salt)
		return m.Add(raw, h, tx)
	}
	// Account 1 sends nonces 2, 0, 1 out of order; account 2 sends nonce 1 only (a gap at 0).
	for _, n := range []uint64{2, 0, 1} {
		if err := add(1, n, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := add(2, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := add(1, 0, 0); !errors.Is(err, ErrTxKnown) {
		t.Errorf("same transaction again: %v, want ErrTxKnown", err)
	}
	if err := add(1, 0, 9); !errors.Is(err, ErrNonceTaken) {
		t.Errorf("other transaction with a pending nonce: %v, want ErrNonceTaken", err)
	}
	if err := add(3, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := add(4, 0, 0); !errors.Is(err, ErrMempoolFull) {
		t.Errorf("sixth transaction in a mempool of 5: %v, want ErrMempoolFull", err)
	}

	// Reap: account 1's nonces in order, account 2 waits on its gap, account 3 after account 1.
	got := m.Reap(10, 1<<20, nonceOf)
	want := [][]byte{}
	for _, n := range []uint64{0, 1, 2} {
		raw, _, _ := pendingFor(1, n, 0)
		want = append(want, raw)
	}
	raw3, _, _ := pendingFor(3, 0, 0)
	want = append(want, raw3)
	if len(got) != len(want) {
		t.Fatalf("reaped %d transactions, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i]) != string(want[i]) {
			t.Errorf("reaped[%d] = %x, want %x", i, got[i], want[i])
		}
	}
	if got := m.Reap(2, 1<<20, nonceOf); len(got) != 2 {
		t.Errorf("Reap(2) gave %d", len(got))
	}

	// A block commits account 1's nonces 0 and 1: they leave, and so does nothing else.
	_, h0, _ := pendingFor(1, 0, 0)
	_, h1, _ := pendingFor(1, 1, 0)
	nonces[state.Address{1}] = 2
	m.Update([]state.Hash{h0, h1}, nonceOf)
	if m.Size() != 3 || m.Has(h0) || m.Has(h1) {
		t.Errorf("after the block: size %d, has committed %v %v", m.Size(), m.Has(h0), m.Has(h1))
	}

	// Another node's block used account 2's nonces 0 and 1 with transactions this mempool never
	// held: the stale one goes at the next Reap instead of waiting for ever.
	nonces[state.Address{2}] = 2
	m.Reap(10, 1<<20, nonceOf)
	if _, h, _ := pendingFor(2, 1, 0); m.Has(h) {
		t.Error("stale transaction of account 2 still pending")
	}
}

func TestMempoolNextNonceCountsTheUnbrokenRunOfPending(t *testing.T) {
	m := NewMempool(10)
	for _, n := range []uint64{3, 4, 6} { // pending 3, 4 and 6: a gap at 5
		raw, h, tx := pendingFor(1, n, 0)
		if err := m.Add(raw, h, tx); err != nil {
			t.Fatal(err)
		}
	}
	var a, other state.Address
	a[0], other[0] = 1, 2
	for _, c := range []struct{ committed, want uint64 }{{3, 5}, {2, 2}, {5, 5}, {6, 7}, {7, 7}} {
		if got := m.NextNonce(a, c.committed); got != c.want {
			t.Errorf("NextNonce(committed %d) = %d, want %d", c.committed, got, c.want)
		}
	}
	if got := m.NextNonce(other, 9); got != 9 {
		t.Errorf("account with nothing pending: %d, want its committed nonce 9", got)
	}
}

// A transaction whose nonce another one used leaves with the reason, for GET /v1/txs/{hash};
// Remove takes out exactly what it is given; Reap takes nothing out.
func TestMempoolSupersededAndRemoved(t *testing.T) {
	m := NewMempool(10)
	why := map[state.Hash]string{}
	m.superseded = func(h state.Hash, reason string) { why[h] = reason }
	nonces := map[state.Address]uint64{}
	nonceOf := func(a state.Address) uint64 { return nonces[a] }
	var hashes []state.Hash
	for n := uint64(0); n < 3; n++ {
		raw, h, tx := pendingFor(1, n, 0)
		if err := m.Add(raw, h, tx); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	if got := m.Reap(10, 1<<20, nonceOf); len(got) != 3 || m.Size() != 3 {
		t.Fatalf("Reap gave %d and left %d, want 3 and 3", len(got), m.Size())
	}
	// A block applied another transaction with nonce 0, and this pool's nonce 1.
	nonces[state.Address{1}] = 2
	m.Update([]state.Hash{hashes[1]}, nonceOf)
	if m.Has(hashes[0]) || !strings.Contains(why[hashes[0]], "already used") || len(why) != 1 {
		t.Fatalf("superseded nonce 0: pending %v, reasons %q", m.Has(hashes[0]), why)
	}
	m.Remove([]state.Hash{hashes[2]})
	if m.Size() != 0 || len(m.order) != 0 || len(m.bySender) != 0 {
		t.Fatalf("empty pool keeps senders: order %d, bySender %d", len(m.order), len(m.bySender))
	}
}

// Execution takes a pending transaction decoded, as admission or gossip decoded it, through the
// sigCache (state.TxDecodedCache); one that is not pending, or no longer, is decoded again.
func TestSigCacheHandsOutMempoolsDecodedTxs(t *testing.T) {
	m := NewMempool(10)
	c := newSigCache(10)
	c.pool = m
	var _ state.TxDecodedCache = c
	raw1, h1, tx1 := pendingFor(1, 0, 0)
	raw2, h2, tx2 := pendingFor(2, 0, 0)
	_, h3, _ := pendingFor(3, 0, 0)
	for _, p := range []struct {
		raw []byte
		h   state.Hash
		tx  *state.Tx
	}{{raw1, h1, tx1}, {raw2, h2, tx2}} {
		if err := m.Add(p.raw, p.h, p.tx); err != nil {
			t.Fatal(err)
		}
	}
	other := &state.Tx{}
	out := []*state.Tx{nil, nil, nil, other}
	c.DecodedTxs([]state.Hash{h1, h3, h2, h1}, out)
	if out[0] != tx1 || out[1] != nil || out[2] != tx2 || out[3] != other {
		t.Fatalf("DecodedTxs = %p %p %p %p, want %p <nil> %p %p (one already set is kept)", out[0], out[1], out[2], out[3], tx1, tx2, other)
	}
	m.Remove([]state.Hash{h1})
	out = make([]*state.Tx, 1)
	c.DecodedTxs([]state.Hash{h1}, out)
	if out[0] != nil {
		t.Fatal("a removed transaction is still handed out")
	}
}

// Reap serves the oldest transactions first, whatever their account: a sender that keeps its
// queue full does not take every block from senders that arrived after it (issue #10: past
// saturation the later senders' transactions waited many seconds behind the first ones).
func TestMempoolReapServesOldestFirst(t *testing.T) {
	m := NewMempool(100)
	nonceOf := func(state.Address) uint64 { return 0 }
	add := func(from byte, nonce uint64) {
		t.Helper()
		raw, h, tx := pendingFor(from, nonce, 0)
		if err := m.Add(raw, h, tx); err != nil {
			t.Fatal(err)
		}
	}
	// Account 1 arrives first and keeps sending; account 2's one transaction arrives between
	// them; account 3 sends nonce 1 early and nonce 0 last, so both are ready only at the end.
	for n := range uint64(5) {
		add(1, n)
	}
	add(3, 1)
	add(2, 0)
	for n := uint64(5); n < 10; n++ {
		add(1, n)
	}
	add(3, 0)
	want := [][2]uint64{{1, 0}, {1, 1}, {1, 2}, {1, 3}, {1, 4}, {2, 0}, {1, 5}}
	got := m.Reap(len(want), 1<<20, nonceOf)
	if len(got) != len(want) {
		t.Fatalf("reaped %d, want %d", len(got), len(want))
	}
	for i, w := range want {
		if raw, _, _ := pendingFor(byte(w[0]), w[1], 0); string(got[i]) != string(raw) {
			t.Errorf("reaped[%d] = %x, want account %d nonce %d", i, got[i], w[0], w[1])
		}
	}
	// All of it: account 3's nonce 1 comes after its nonce 0, at the end, in nonce order.
	all := m.Reap(100, 1<<20, nonceOf)
	if len(all) != 13 {
		t.Fatalf("reaped %d of 13", len(all))
	}
	for i, w := range [][2]uint64{{3, 0}, {3, 1}} {
		if raw, _, _ := pendingFor(byte(w[0]), w[1], 0); string(all[11+i]) != string(raw) {
			t.Errorf("reaped[%d] = %x, want account %d nonce %d", 11+i, all[11+i], w[0], w[1])
		}
	}
}

// Own counts the pending transactions from this node's API that can be proposed: not gossiped
// ones, not those waiting behind a gap (as of the last Gapped), not those gone.
func TestMempoolOwnCountsProposableFromTheAPI(t *testing.T) {
	m := NewMempool(10)
	nonceOf := func(state.Address) uint64 { return 0 }
	var hashes []state.Hash
	for _, x := range []struct {
		from  byte
		nonce uint64
		own   bool
	}{{1, 0, true}, {1, 1, true}, {2, 1, true}, {3, 0, false}} { // account 2 waits on a gap
		raw, h, tx := pendingFor(x.from, x.nonce, 0)
		add := m.Add
		if x.own {
			add = m.AddOwn
		}
		if err := add(raw, h, tx); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	if got := m.Own(); got != 3 {
		t.Fatalf("Own = %d, want 3 before any Gapped", got)
	}
	if g := m.Gapped(nonceOf); g != 1 || m.Own() != 2 {
		t.Fatalf("Gapped = %d, Own = %d; want 1 and 2", g, m.Own())
	}
	m.Remove(hashes[:1])
	m.Remove(hashes[:1]) // gone already: counted once
	if got := m.Own(); got != 1 {
		t.Fatalf("Own after one left = %d, want 1", got)
	}
}
