package node

import (
	"testing"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// A decided block's results and indexes wait until the loop has handled the next height's start
// (issue #10): the commit the core asks for executes the block and settles the mempool, the next
// block can be built and checked on that tip, and the results are written after, yet before the
// next block is stored. Meanwhile the block's transactions read as pending, never as unknown.
func TestCommitDefersResultsPastTheNextHeight(t *testing.T) {
	c, n := validatorOfSyncChain(t)
	txs := c.payments(t, 0, 1)
	pool(t, n, txs)
	for _, raw := range txs {
		n.sigs.add(state.HashTx(raw))
	}
	h := n.blocks.Height() + 1
	value := nextValue(t, n, n.leadersAt(h).leader, txs[:1])
	rd := consensus.Ready{Status: n.core.Status(), Committed: []consensus.Committed{
		{Height: h, Value: value, Certificate: certify(c.gen.ChainID, c.valKeys[:3], h, consensus.DigestOf(value))}}}
	if err := n.handleReady(rd); err != nil {
		t.Fatal(err)
	}

	if got := n.st.Height(); got != h {
		t.Fatalf("state at %d after the commit, want %d", got, h)
	}
	if res, err := n.blocks.Results(h); err != nil || res != nil {
		t.Fatalf("results of block %d written with its commit (%v, %v); they wait for the next height's start", h, res, err)
	}
	hash := state.HashTx(txs[0])
	if n.pool.Has(hash) {
		t.Fatal("the committed transaction is still in the mempool: the next proposal could hold it again")
	}
	if st := txStatus(t, n, txs[0]); st.Status != api.TxPending {
		t.Fatalf("status of the committed, not yet indexed transaction: %+v, want pending", st)
	}
	if got := n.executedHeight(); got != h-1 {
		t.Fatalf("served height %d before the results are written, want %d", got, h-1)
	}
	// The next height proceeds on the new tip without them.
	next := nextValue(t, n, n.leadersAt(h+1).leader, txs[1:])
	if err := n.CheckProposal(h+1, next); err != nil {
		t.Fatalf("checking block %d before block %d's results are written: %v", h+1, h, err)
	}

	if err := n.recordResults(); err != nil {
		t.Fatal(err)
	}
	if res, err := n.blocks.Results(h); err != nil || len(res) != 1 || res[0].Hash != hash {
		t.Fatalf("results of block %d: %v %v", h, res, err)
	}
	if st := txStatus(t, n, txs[0]); st.Status != api.TxCommitted || st.Height != h {
		t.Fatalf("status after recording: %+v, want committed at %d", st, h)
	}

	// Deferred again, then the next commit: block h+1's results are on disk before block h+2 is
	// stored, since recovery rewrites only the state's last block's.
	rd = consensus.Ready{Status: n.core.Status(), Committed: []consensus.Committed{
		{Height: h + 1, Value: next, Certificate: certify(c.gen.ChainID, c.valKeys[:3], h+1, consensus.DigestOf(next))}}}
	if err := n.handleReady(rd); err != nil {
		t.Fatal(err)
	}
	third := nextValue(t, n, n.leadersAt(h+2).leader, nil)
	if err := n.commitBlock(consensus.Committed{Height: h + 2, Value: third,
		Certificate: certify(c.gen.ChainID, c.valKeys[:3], h+2, consensus.DigestOf(third))}, true, true); err != nil {
		t.Fatal(err)
	}
	if res, err := n.blocks.Results(h + 1); err != nil || len(res) != 1 {
		t.Fatalf("results of block %d when block %d is stored: %v %v", h+1, h+2, res, err)
	}
	if err := n.recordResults(); err != nil {
		t.Fatal(err)
	}
	if got := n.executedHeight(); got != h+2 {
		t.Fatalf("served height %d, want %d", got, h+2)
	}
}
