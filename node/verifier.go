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

	// flush's scratch space, reused from batch to batch.
	first map[state.Hash]int // hash -> index in txs
	txs   []*state.Tx        // the batch's distinct transactions not verified yet
	owner []jobRef           // by index in txs: the job that brought it first
	dups  []dupRef           // the other jobs waiting on one of txs
	good  []state.Hash
}

func newVerifier(chainID string, sigs *sigCache, m *metrics, quit <-chan struct{}) *verifier {
	return &verifier{chainID: chainID, sigs: sigs, jobs: make(chan *verifyJob, 4096), m: m, quit: quit}
}

// verify returns one error per transaction (nil: every signature is good, and the sigCache
// knows it). hashes[i] is HashTx of txs[i]'s encoding.
func (v *verifier) verify(ctx context.Context, txs []*state.Tx, hashes []state.Hash) []error {
	errs := make([]error, len(txs))
	job := &verifyJob{done: make(chan struct{}), txs: make([]*state.Tx, 0, len(txs)), hashes: make([]state.Hash, 0, len(txs))}
	idx := make([]int, 0, len(txs))
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

// flush verifies the jobs' transactions together, each distinct one once, and answers them. Its
// scratch space is the verifier's, reused from batch to batch (flush runs on run's goroutine
// only): no map or slices made per batch, nothing allocated per transaction.
func (v *verifier) flush(jobs []*verifyJob) {
	if v.first == nil {
		v.first = make(map[state.Hash]int, verifyBatch)
	}
	txs, owner, dups := v.txs[:0], v.owner[:0], v.dups[:0]
	for ji, j := range jobs {
		for i, h := range j.hashes {
			if k, ok := v.first[h]; ok {
				dups = append(dups, dupRef{k: k, ref: jobRef{ji, i}})
				continue
			}
			if v.sigs.Verified(h) {
				continue // verified by an earlier batch since it was asked for: nil error
			}
			v.first[h] = len(txs)
			txs = append(txs, j.txs[i])
			owner = append(owner, jobRef{ji, i})
		}
	}
	start := time.Now()
	errs := state.VerifyTxs(v.chainID, txs)
	if v.m != nil && len(txs) > 0 {
		v.m.verifyBatch.Observe(float64(len(txs)))
		v.m.verifySeconds.Observe(time.Since(start).Seconds())
	}
	good := v.good[:0]
	for k, err := range errs {
		r := owner[k]
		jobs[r.job].errs[r.i] = err
		if err == nil {
			good = append(good, jobs[r.job].hashes[r.i])
		}
	}
	for _, d := range dups {
		jobs[d.ref.job].errs[d.ref.i] = errs[d.k]
	}
	v.sigs.add(good...)
	for _, j := range jobs {
		close(j.done)
	}
	clear(v.first)
	clear(txs) // the scratch keeps no transaction alive
	v.txs, v.owner, v.dups, v.good = txs[:0], owner[:0], dups[:0], good[:0]
}

// jobRef is a transaction of a batch: the i-th of its job-th job.
type jobRef struct{ job, i int }

// dupRef is a later job's copy of the k-th distinct transaction of a batch.
type dupRef struct {
	k   int
	ref jobRef
}
