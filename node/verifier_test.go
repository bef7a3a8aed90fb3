package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"runtime"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/guild-ledger/guild/state"
)

// Jobs from many callers (API workers, gossip validators) that arrive together are verified in
// one batch; a transaction in several jobs is verified once; a bad signature fails only its own
// transaction; and what was verified is in the sigCache.
func TestVerifierBatchesCallersAndVerifiesEachOnce(t *testing.T) {
	const chain = "verifier-test"
	m := newMetrics()
	quit := make(chan struct{})
	defer close(quit)
	v := newVerifier(chain, newSigCache(1024), m, quit)
	var txs []*state.Tx
	var hashes []state.Hash
	for i := range 50 {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		raw := transfer(t, chain, key, 0, state.Address{1}, 1)
		tx, err := state.DecodeTx(raw)
		if err != nil {
			t.Fatal(err)
		}
		if i == 7 {
			tx.Sigs[0].Sig[0] ^= 1
		}
		txs, hashes = append(txs, tx), append(hashes, state.HashTx(raw))
	}
	// Queue every job before the verifier runs, so they all meet in its first batch: 4 callers
	// of 20 transactions each, overlapping by half.
	results := make([][]error, 4)
	var wg sync.WaitGroup
	for c := range 4 {
		lo := c * 10
		wg.Go(func() { results[c] = v.verify(context.Background(), txs[lo:lo+20], hashes[lo:lo+20]) })
	}
	for len(v.jobs) < 4 {
		runtime.Gosched() // until every caller's job is queued
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go v.run(ctx)
	wg.Wait()
	for c, errs := range results {
		for j, err := range errs {
			i := c*10 + j
			if (i == 7) != (err != nil) {
				t.Errorf("tx %d (caller %d): %v", i, c, err)
			}
		}
	}
	var h dto.Metric
	if err := m.verifyBatch.Write(&h); err != nil {
		t.Fatal(err)
	}
	if n, sum := h.GetHistogram().GetSampleCount(), h.GetHistogram().GetSampleSum(); n != 1 || sum != 50 {
		t.Errorf("%d batches of %v transactions in all, want 1 batch of the 50 distinct", n, sum)
	}
	if !v.sigs.Verified(hashes[0]) || v.sigs.Verified(hashes[7]) {
		t.Error("sigCache: want the good transactions in, the forged one out")
	}
	// Verified already: answered without another batch.
	if errs := v.verify(context.Background(), txs[:5], hashes[:5]); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if err := m.verifyBatch.Write(&h); err != nil || h.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("a second batch for transactions verified already (%v)", err)
	}
}
