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
// Entries are written to the block store under "p/" ‖ tx hash, in one synced batch per admission
// batch, before the client's answer: a 202 means the transaction is on disk. (Written without a
// sync they were not, even against a mere kill of the process: pebble holds an unsynced record in
// its own buffer, and a chaos run's killed validator took the last of its accepted transactions
// with it, leaving every later nonce of their senders pending for good.) Concurrent admission
// batches share one fsync (pebble commits syncs in groups). Deleting entries needs no sync: one
// lost brings back a transaction that is refused again. Gossiped transactions are not logged:
// they are on another node already.
// On start the node takes the logged transactions in again through the API's admission path, and a
// sweep drops entries whose transaction left the mempool (committed, refused, superseded).
//
// The sweep also gossips again what is still pending pendingResendAfter after it was last sent.
// What a restarted node takes back is gossiped before it has peers, so only it held those
// transactions, and it was skipped as leader for having missed its turn while down: in CI 546
// accepted transactions were still pending at the end of a chaos run. The same holds for a
// transaction whose first gossip a busy peer dropped.
var pendingPrefix = []byte("p/")

const (
	pendingSweepEvery  = 2 * time.Second
	pendingResendAfter = 10 * time.Second
)

func pendingKey(h state.Hash) []byte { return append(slices.Clip(pendingPrefix), h[:]...) }

type pendingLog struct {
	db   kv.Store
	mu   sync.Mutex
	kept map[state.Hash]*loggedTx
}

type loggedTx struct {
	raw  []byte
	sent time.Time // last gossiped
}

func newPendingLog(db kv.Store) *pendingLog {
	return &pendingLog{db: db, kept: map[state.Hash]*loggedTx{}}
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
	if err := b.Write(); err != nil {
		return err
	}
	now := time.Now()
	l.mu.Lock()
	for i, h := range hashes {
		l.kept[h] = &loggedTx{raw: raws[i], sent: now}
	}
	l.mu.Unlock()
	return nil
}

// keep has the sweep watch entries already in the log.
func (l *pendingLog) keep(hashes []state.Hash, raws [][]byte) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, h := range hashes {
		l.kept[h] = &loggedTx{raw: raws[i], sent: now}
	}
}

// resendSoon makes the entries of hashes due at the next sweep: a restarted node took them back
// before it had peers, so their gossip then reached no one.
func (l *pendingLog) resendSoon(hashes []state.Hash) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range hashes {
		if t, ok := l.kept[h]; ok {
			t.sent = time.Time{}
		}
	}
}

// allDue makes every entry due at the next resend.
func (l *pendingLog) allDue() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range l.kept {
		t.sent = time.Time{}
	}
}

// due returns the entries last gossiped before cutoff, and marks them sent now.
func (l *pendingLog) due(cutoff, now time.Time) [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]byte
	for _, t := range l.kept {
		if t.sent.Before(cutoff) {
			out = append(out, t.raw)
			t.sent = now
		}
	}
	return out
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
// Each time a peer joins the transactions topic it also gossips every entry again, at once: what
// was published before pubsub counted that peer as subscribed never reached it, and pubsub does
// not say so. A restarted validator is the common case: it accepts transactions (and takes its
// logged ones back) while its links are coming up, and in a chaos run such transactions reached
// no other node until the resend pendingResendAfter later, while every later transaction of
// their senders waited behind them (10.3 s in a traced run). It also covers a node
// whose link to one peer was cut and re-made (linkcheck.go) and a peer that restarted with an
// empty mempool.
func (n *Node) runPendingLog(ctx context.Context) {
	defer n.wg.Done()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.readmitPending(ctx)
	}()
	t := time.NewTicker(pendingSweepEvery)
	defer t.Stop()
	// The peers of a node that starts join within moments of one another: one resend, a little
	// after the first join, reaches them all.
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	settling := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.host.TxPeersJoined():
			if !settling {
				settle.Reset(pendingJoinSettle)
				settling = true
			}
			continue
		case <-settle.C:
			settling = false
			// Swept first: what left the mempool since the last sweep is not sent again.
			if n.sweepPending() {
				n.pending.allDue()
				n.resendPending()
			}
			continue
		case <-t.C:
		}
		if n.sweepPending() {
			n.resendPending()
		}
	}
}

// sweepPending drops from the pending log what left the mempool; false if the store failed.
func (n *Node) sweepPending() bool {
	left, err := n.pending.sweep(n.pool.Has)
	if err != nil {
		n.storeFailed("dropping committed transactions from the pending log", err)
		return false
	}
	n.metrics.pendingLogged.Set(float64(left))
	return true
}

// pendingJoinSettle is how long after a peer joins the transactions topic the pending log is
// gossiped again, so that peers joining together get one resend.
const pendingJoinSettle = 100 * time.Millisecond

// resendPending gossips again the pending log's entries that are due, as far as the gossip queue
// takes them (the rest stay due for the next sweep).
func (n *Node) resendPending() {
	// With no peer in the transactions topic (connected or not), gossip would reach no one:
	// what is due stays due until a peer joins.
	if n.host.TxPeers() == 0 {
		return
	}
	now := time.Now()
	due := n.pending.due(now.Add(-pendingResendAfter), now)
	for i := 0; i < len(due); i += gossipMaxTxs {
		chunk := due[i:min(i+gossipMaxTxs, len(due))]
		select {
		case n.gossipCh <- chunk:
			n.metrics.pendingResent.Add(float64(len(chunk)))
			continue
		default:
		}
		// The gossip queue is busy: the rest stay due for the next sweep.
		rest := make([]state.Hash, 0, len(due)-i)
		for _, raw := range due[i:] {
			rest = append(rest, state.HashTx(raw))
		}
		n.pending.resendSoon(rest)
		return
	}
}

// pendingReadmitFor is how long a restarted node keeps offering its logged transactions to its
// own admission while it refuses them as busy: it is behind the chain when it starts, and its
// admission door is closed (lag) until it has caught up.
const pendingReadmitFor = 2 * time.Minute

// readmitPending takes the logged transactions back through the API's admission path. Those
// refused for want of room or while the node catches up are offered again every sweep period;
// those refused for good (committed meanwhile, nonce used) are dropped from the log.
func (n *Node) readmitPending(ctx context.Context) {
	raws, err := n.pending.load()
	if err != nil {
		n.storeFailed("reading the pending log", err)
		return
	}
	if len(raws) == 0 {
		return
	}
	logged := len(raws)
	const chunk = 256
	var taken []state.Hash
	var known, refused []state.Hash
	var knownRaws [][]byte
	deadline := time.Now().Add(pendingReadmitFor)
	for len(raws) > 0 {
		var busy [][]byte
		for start := 0; start < len(raws); start += chunk {
			if ctx.Err() != nil {
				return
			}
			part := raws[start:min(start+chunk, len(raws))]
			hashes, errs := n.SubmitBatch(ctx, part)
			for i, err := range errs {
				switch {
				case err == nil: // logged again by its admission
					taken = append(taken, hashes[i])
				case errors.Is(err, ErrTxKnown): // gossip brought it back first
					known, knownRaws = append(known, hashes[i]), append(knownRaws, part[i])
				case errors.Is(err, ErrMempoolFull) && time.Now().Before(deadline):
					busy = append(busy, part[i])
				default:
					// Committed meanwhile or its nonce used: a client that asks finds it
					// committed, or unknown as after any refusal.
					refused = append(refused, hashes[i])
				}
			}
		}
		raws = busy
		if len(raws) > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pendingSweepEvery):
			}
		}
	}
	n.pending.keep(known, knownRaws)
	// Taken back before this node had peers, their gossip went nowhere: the first sweep with a
	// peer sends them, not the one pendingResendAfter later. Until then only this node holds
	// them, and every later transaction of their senders waits behind them (a chaos run's
	// restarted validator: p99 finality 8.6 s, the longest 12.2 s).
	n.pending.resendSoon(taken)
	if err := n.pending.drop(refused); err != nil {
		n.storeFailed("dropping refused transactions from the pending log", err)
	}
	n.log.Info("took back the transactions this node had accepted and not yet seen committed before it stopped",
		"logged", logged, "taken", len(taken), "already_known", len(known), "no_longer_valid", len(refused))
}
