package node

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// The pending log keeps the transactions this node accepted from its API (answered 202) until they
// leave its mempool, so that a node killed before it gossiped one does not lose it: the client was
// told "accepted", and the sender's later nonces would wait behind the gap for good. A chaos run
// that restarted one validator left 1,921 accepted transactions pending on every node, behind
// the few the restarted node took with it.
//
// Entries are written to the block store under "p/" ‖ tx hash, in one batch per admission batch,
// before the client's answer, without a sync of their own: a killed process loses nothing (the
// operating system holds the write), a lost machine loses what the next block's synced write had
// not yet carried to disk. Gossiped transactions are not logged: they are on another node already.
// On start the node takes the logged transactions in again through the API's admission path, and a
// sweep drops entries whose transaction left the mempool (committed, refused, superseded).
var pendingPrefix = []byte("p/")

const pendingSweepEvery = 2 * time.Second

func pendingKey(h state.Hash) []byte { return append(slices.Clip(pendingPrefix), h[:]...) }

type pendingLog struct {
	db   kv.Store
	mu   sync.Mutex
	kept map[state.Hash]struct{}
}

func newPendingLog(db kv.Store) *pendingLog {
	return &pendingLog{db: db, kept: map[state.Hash]struct{}{}}
}

// add logs admitted transactions.
func (l *pendingLog) add(hashes []state.Hash, raws [][]byte) error {
	if len(hashes) == 0 {
		return nil
	}
	b := l.db.NewBatch()
	defer b.Close()
	for i, h := range hashes {
		if err := b.Set(pendingKey(h), raws[i]); err != nil {
			return err
		}
	}
	if err := b.WriteNoSync(); err != nil {
		return err
	}
	l.mu.Lock()
	for _, h := range hashes {
		l.kept[h] = struct{}{}
	}
	l.mu.Unlock()
	return nil
}

// keep has the sweep watch entries already in the log.
func (l *pendingLog) keep(hashes []state.Hash) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range hashes {
		l.kept[h] = struct{}{}
	}
}

// sweep drops the entries for which keep is false; it returns how many are left.
func (l *pendingLog) sweep(keep func(state.Hash) bool) (int, error) {
	l.mu.Lock()
	var gone []state.Hash
	for h := range l.kept {
		if !keep(h) {
			gone = append(gone, h)
		}
	}
	l.mu.Unlock()
	if err := l.drop(gone); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.kept), nil
}

// drop deletes entries.
func (l *pendingLog) drop(hashes []state.Hash) error {
	if len(hashes) == 0 {
		return nil
	}
	b := l.db.NewBatch()
	defer b.Close()
	for _, h := range hashes {
		if err := b.Delete(pendingKey(h)); err != nil {
			return err
		}
	}
	if err := b.WriteNoSync(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range hashes {
		delete(l.kept, h)
	}
	return nil
}

// load reads every logged transaction, ordered by sender and nonce so that re-admission meets
// each sender's transactions in the order they can run; entries that do not decode are dropped.
func (l *pendingLog) load() ([][]byte, error) {
	end := slices.Clone(pendingPrefix)
	end[len(end)-1]++
	it, err := l.db.Iterator(pendingPrefix, end)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	type entry struct {
		raw  []byte
		from state.Address
		n    uint64
	}
	var es []entry
	var bad [][]byte
	for ; it.Valid(); it.Next() {
		raw := bytes.Clone(it.Value())
		tx, err := state.DecodeTx(raw)
		if err != nil {
			bad = append(bad, bytes.Clone(it.Key()))
			continue
		}
		es = append(es, entry{raw, tx.Body.From, tx.Body.Nonce})
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		b := l.db.NewBatch()
		defer b.Close()
		for _, k := range bad {
			_ = b.Delete(k)
		}
		_ = b.WriteNoSync()
	}
	slices.SortFunc(es, func(a, b entry) int {
		if c := bytes.Compare(a.from[:], b.from[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.n, b.n)
	})
	raws := make([][]byte, len(es))
	for i := range es {
		raws[i] = es[i].raw
	}
	return raws, nil
}

// runPendingLog re-admits what the log kept from before a restart, then sweeps it until ctx ends.
func (n *Node) runPendingLog(ctx context.Context) {
	defer n.wg.Done()
	n.readmitPending(ctx)
	t := time.NewTicker(pendingSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		left, err := n.pending.sweep(n.pool.Has)
		if err != nil {
			n.storeFailed("dropping committed transactions from the pending log", err)
			continue
		}
		n.metrics.pendingLogged.Set(float64(left))
	}
}

func (n *Node) readmitPending(ctx context.Context) {
	raws, err := n.pending.load()
	if err != nil {
		n.storeFailed("reading the pending log", err)
		return
	}
	if len(raws) == 0 {
		return
	}
	const chunk = 256
	taken := 0
	var known, refused []state.Hash
	for start := 0; start < len(raws); start += chunk {
		if ctx.Err() != nil {
			return
		}
		hashes, errs := n.SubmitBatch(ctx, raws[start:min(start+chunk, len(raws))])
		for i, err := range errs {
			switch {
			case err == nil: // logged again by its admission
				taken++
			case errors.Is(err, ErrTxKnown): // gossip brought it back first
				known = append(known, hashes[i])
			default:
				// Committed meanwhile, its nonce used, or no room: a client that asks finds it
				// unknown or committed, as after any refusal.
				refused = append(refused, hashes[i])
			}
		}
	}
	n.pending.keep(known)
	if err := n.pending.drop(refused); err != nil {
		n.storeFailed("dropping refused transactions from the pending log", err)
	}
	n.log.Info("took back the transactions this node had accepted and not yet seen committed before it stopped",
		"logged", len(raws), "taken", taken, "already_known", len(known), "no_longer_valid", len(refused))
}
