package node

import (
	"context"
	"time"

	"github.com/guild-ledger/guild/state"
)

// One verifier per node checks every transaction signature that reaches it, from the API and
// from gossip alike, in big batches: batch verification costs well under half of one-at-a-time
// per signature at 1,024, but a gossip message or an API request alone carries few transactions.
// Callers hand it their transactions and wait; it collects what arrives until it holds
// verifyBatch transactions or the first has waited verifyWait, then verifies them together
// (state.VerifyTxs spreads them over the cores). A transaction already verified (the sigCache)
// or already waiting in the batch is not verified again: each is verified once per node.

const (
	verifyBatch = 1024
	verifyWait  = 2 * time.Millisecond
)

type verifyJob struct {
	txs    []*state.Tx
	hashes []state.Hash
	errs   []error
	done   chan struct{}
}

type verifier struct {
	chainID string
	sigs    *sigCache
	jobs    chan *verifyJob
	m       *metrics
	quit    <-chan struct{} // closed when the node stops: waiters give up
}

func newVerifier(chainID string, sigs *sigCache, m *metrics, quit <-chan struct{}) *verifier {
	return &verifier{chainID: chainID, sigs: sigs, jobs: make(chan *verifyJob, 4096), m: m, quit: quit}
}

// verify returns one error per transaction (nil: every signature is good, and the sigCache
// knows it). hashes[i] is HashTx of txs[i]'s encoding.
func (v *verifier) verify(ctx context.Context, txs []*state.Tx, hashes []state.Hash) []error {
	errs := make([]error, len(txs))
	job := &verifyJob{done: make(chan struct{})}
	var idx []int
	for i, h := range hashes {
		if !v.sigs.Verified(h) {
			job.txs, job.hashes = append(job.txs, txs[i]), append(job.hashes, h)
			idx = append(idx, i)
		}
	}
	if len(job.txs) == 0 {
		return errs
	}
	job.errs = make([]error, len(job.txs))
	select {
	case v.jobs <- job:
	case <-ctx.Done():
		return fill(errs, ctx.Err())
	case <-v.quit:
		return fill(errs, errStopping)
	}
	select {
	case <-job.done:
	case <-ctx.Done():
		return fill(errs, ctx.Err())
	case <-v.quit:
		return fill(errs, errStopping)
	}
	for j, i := range idx {
		errs[i] = job.errs[j]
	}
	return errs
}

func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// run is the verifier's goroutine.
func (v *verifier) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []*verifyJob
	size := 0
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-v.jobs:
			if len(batch) == 0 {
				timer.Reset(verifyWait)
			}
			batch, size = append(batch, j), size+len(j.txs)
			// Whatever is queued already joins without waiting.
		more:
			for size < verifyBatch {
				select {
				case j := <-v.jobs:
					batch, size = append(batch, j), size+len(j.txs)
				default:
					break more
				}
			}
			if size < verifyBatch {
				continue
			}
			timer.Stop()
		case <-timer.C:
		}
		v.flush(batch)
		clear(batch)
		batch, size = batch[:0], 0
	}
}

// flush verifies the jobs' transactions together, each distinct one once, and answers them.
func (v *verifier) flush(jobs []*verifyJob) {
	type ref struct{ job, i int }
	var (
		txs   []*state.Tx
		first = make(map[state.Hash]int) // hash -> index in txs
		refs  [][]ref                    // by index in txs: who waits on it
	)
	for ji, j := range jobs {
		for i, h := range j.hashes {
			if k, ok := first[h]; ok {
				refs[k] = append(refs[k], ref{ji, i})
				continue
			}
			if v.sigs.Verified(h) {
				continue // verified by an earlier batch since it was asked for: nil error
			}
			first[h] = len(txs)
			txs = append(txs, j.txs[i])
			refs = append(refs, []ref{{ji, i}})
		}
	}
	start := time.Now()
	errs := state.VerifyTxs(v.chainID, txs)
	if v.m != nil && len(txs) > 0 {
		v.m.verifyBatch.Observe(float64(len(txs)))
		v.m.verifySeconds.Observe(time.Since(start).Seconds())
	}
	var good []state.Hash
	for k, err := range errs {
		for _, r := range refs[k] {
			jobs[r.job].errs[r.i] = err
		}
		if err == nil {
			good = append(good, jobs[refs[k][0].job].hashes[refs[k][0].i])
		}
	}
	v.sigs.add(good...)
	for _, j := range jobs {
		close(j.done)
	}
}
