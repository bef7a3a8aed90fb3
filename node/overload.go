package node

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/guild-ledger/guild/node/api"
)

// Overload: a node that is offered more than it can finalize refuses the excess at the door, at
// once and before decoding or verifying anything, instead of queueing it. Queued work would only
// take the CPU that consensus needs to finalize what is already pending: past saturation finality
// then stretched to seconds and throughput fell (the collapse of issue #10). A refused client is
// told when to come back (Retry-After) and loses nothing: nothing of its request was taken.

// ErrOverloaded refuses a submission while too many transactions are pending or blocks are not
// being finalized; the API answers 503 with Retry-After.
var ErrOverloaded = errors.New("node: overloaded: too many transactions pending or no block finalized lately; retry later")

// retryAfterSeconds is the Retry-After of a refusal. HTTP counts it in whole seconds; a client
// may well retry sooner with its own backoff.
const retryAfterSeconds = "1"

// pendingWindow: by default the mark is what the chain finalized over the last pendingWindow
// (at least two blocks' worth, at most maxPendingBlocks): a transaction admitted at the mark
// waits about this long for its block at the rate the chain keeps.
const pendingWindow = time.Second

// maxPendingBlocks caps the default mark, in blocks' worth: a node applying a burst of blocks
// (catching up by block sync) must not take that burst for its rate.
const maxPendingBlocks = 8

// minDefaultPending floors the default mark: with small blocks (a consortium may set
// max_block_txs to a few) two blocks' worth would refuse an ordinary burst of a dozen transfers,
// though the node is far from overloaded.
const minDefaultPending = 256

// overloadWarnEvery rate-limits the WARN an operator sees while submissions are refused.
const overloadWarnEvery = 30 * time.Second

// admissionGate holds what the API checks before taking a submission. The handlers read it from
// their own goroutines: its fields are atomics set by the loop.
type admissionGate struct {
	maxPending atomic.Int64 // refuse while the mempool holds this many
	maxLag     atomic.Int64 // ns: refuse while txs are pending and no block came for this long
	lastCommit atomic.Int64 // unix ns of the last commit; 0 before the first
	lastWarn   atomic.Int64 // unix ns
	// gapped is how many pending transactions waited behind a nonce gap after the last block:
	// they do not count at the door, so that they can never keep out the ones closing their gaps.
	gapped atomic.Int64
	// queued is how many API transactions wait for an admission worker (at most admitQueue).
	queued atomic.Int64
	// takers is how many nodes take submissions now, as far as this one can tell: itself and
	// the peers whose gossip brought transactions within the last pendingWindow (0 reads as 1).
	takers atomic.Int64

	// The loop's alone: floor is the mark from the parameters (setParams), fixed when
	// max_pending is set; otherwise maxPending follows the rate finalized over window, above it.
	floor, size int64
	fixed       bool
	window      []finalizedTxs // the blocks of the last pendingWindow, oldest first
}

// setParams derives the gate from the parameters in force: at least two blocks' worth of pending
// transactions (the next block full, and the one after), more while the chain finalizes more
// (finalized: beyond a second's worth a new transaction only waits longer, its latency being
// what is pending over the throughput), and a lag of two view timeouts (a view change takes one).
func (g *admissionGate) setParams(cfg MempoolConfig, p params) {
	pending := int64(cfg.MaxPending)
	g.fixed = pending > 0
	if !g.fixed {
		pending = max(2*int64(max(p.proposeTxs, 1)), minDefaultPending)
	}
	g.floor, g.size = pending, int64(cfg.Size)
	g.maxPending.Store(min(pending, g.size))
	g.follow()
	lag := time.Duration(cfg.MaxFinalityLagMillis) * time.Millisecond
	if lag <= 0 {
		lag = 2 * p.viewTimeout
	}
	g.maxLag.Store(int64(lag))
}

// room is how many more transactions the API may admit with pending ones in the mempool, of
// which gapped wait behind nonce gaps and do not count, and own (proposable) came from this
// node's API.
func (g *admissionGate) room(pending, own int) int {
	m := g.maxPending.Load()
	if m <= 0 {
		return math.MaxInt
	}
	return int(max(0, min(m-(int64(pending)-g.gapped.Load()), g.ownMark()-int64(own))))
}

// ownMark is this node's share of the mark: how many proposable transactions from its own API
// may be pending. Every node taking submissions sees the same room and fills it at once, before
// the others' gossip shows what they took: refused clients coming back together filled each
// node's room, four times the mark in all, and past saturation transactions waited seconds
// (issue #10). Shared out, the nodes together stay near the mark whether clients go to one node
// or to all.
func (g *admissionGate) ownMark() int64 {
	m := g.maxPending.Load()
	return max(1, m/max(1, g.takers.Load()))
}

// admitQueue bounds the API transactions waiting for an admission worker: past it requests are
// refused busy at once rather than queued behind the workers.
const admitQueue = 8192

// enqueue counts k transactions into the admission queue, false (and nothing counted) if that
// would take it past admitQueue; a request alone in the queue always fits.
func (g *admissionGate) enqueue(k int) bool {
	if q := g.queued.Add(int64(k)); q > admitQueue && q != int64(k) {
		g.queued.Add(-int64(k))
		return false
	}
	return true
}

// dequeue counts k transactions out of the admission queue.
func (g *admissionGate) dequeue(k int) { g.queued.Add(-int64(k)) }

// heard records, from the gossip receiver, the peers whose transactions came within the last
// pendingWindow (by when they were last heard), and sets takers from them.
func (g *admissionGate) heard(peers map[string]time.Time, now time.Time) {
	takers := int64(1)
	for p, at := range peers {
		if now.Sub(at) > pendingWindow {
			delete(peers, p)
			continue
		}
		takers++
	}
	g.takers.Store(takers)
}

func (g *admissionGate) committed(now time.Time) { g.lastCommit.Store(now.UnixNano()) }

// finalizedTxs is a block's transactions and when it was committed.
type finalizedTxs struct {
	at  time.Time
	txs int
}

// finalized records a committed block of txs transactions and, unless max_pending is set, moves
// the mark to what the chain finalized over the last pendingWindow, at least the floor: a
// fixed two blocks' worth refused clients while the chain had headroom (at 8,000 tx/s offered,
// 2,000-transaction blocks came every ~200 ms and the door shut at 4,000 pending), and would
// let too much wait on a chain that finalizes slowly. On the loop.
func (g *admissionGate) finalized(now time.Time, txs int) {
	g.window = append(g.window, finalizedTxs{at: now, txs: txs})
	drop := 0
	for drop < len(g.window) && now.Sub(g.window[drop].at) > pendingWindow {
		drop++
	}
	g.window = g.window[drop:]
	g.follow()
}

// follow sets the mark from the floor and the window. On the loop.
func (g *admissionGate) follow() {
	if g.fixed || g.size <= 0 {
		return
	}
	sum := int64(0)
	for _, f := range g.window {
		sum += int64(f.txs)
	}
	g.maxPending.Store(min(max(g.floor, min(sum, g.floor*maxPendingBlocks/2)), g.size))
}

// check is nil if a submission may come in now, else why not ("pending" or "lag") and
// ErrOverloaded; own is how many proposable pending transactions came from this node's API.
func (g *admissionGate) check(pending, own int, now time.Time) (string, error) {
	// At the door, the mark counts what can be proposed; transactions waiting behind nonce gaps
	// (as of the last block) do not count at all: their number is bounded by the mempool's size
	// and each sender's nonce-ahead limit, and counting them let a few senders whose earlier
	// transaction died with a killed node wedge the door for everyone (a 10-minute chaos run:
	// 7,526 such transactions, every submission refused for minutes). Past the mark, requests
	// let in together are read and decoded, and only transactions closing gaps are taken
	// (SubmitBatch), so that transactions behind a gap never keep out the ones that close it.
	if m := g.maxPending.Load(); m > 0 && (int64(pending)-g.gapped.Load() >= m || int64(own) >= g.ownMark()) {
		return "pending", ErrOverloaded
	}
	if last, lag := g.lastCommit.Load(), g.maxLag.Load(); pending > 0 && last != 0 && lag > 0 && now.UnixNano()-last > lag {
		return "lag", ErrOverloaded
	}
	return "", nil
}

// refuseIfOverloaded answers 503 with Retry-After and returns true when the node takes no
// submissions now.
func (n *Node) refuseIfOverloaded(w http.ResponseWriter) bool {
	now := time.Now()
	pending := n.pool.Size()
	why, err := n.gate.check(pending, n.pool.Own(), now)
	if err == nil {
		return false
	}
	n.metrics.apiRefused.WithLabelValues(why).Inc()
	if last := n.gate.lastWarn.Load(); now.UnixNano()-last > int64(overloadWarnEvery) && n.gate.lastWarn.CompareAndSwap(last, now.UnixNano()) {
		n.log.Warn("refusing transaction submissions (503, Retry-After): the node is offered more than it finalizes",
			slog.String("reason", why), slog.Int("pending", pending), slog.Int64("max_pending", n.gate.maxPending.Load()),
			slog.String("action", "clients retry; if this lasts, check guild_height and view changes, or lower the offered rate"))
	}
	w.Header().Set("Retry-After", retryAfterSeconds)
	writeError(w, http.StatusServiceUnavailable, api.CodeOverloaded, err.Error())
	return true
}
