package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// Transactions enter a node two ways, both off the consensus loop: the API (admitted in batches by
// workers, then gossiped in batches) and gossip (verified by the pubsub validator, then added).
// Each signature is verified once per node; the sigCache remembers it for proposals and execution.

const (
	admitBatch    = verifyBatch
	gossipMaxTxs  = 2048
	gossipMaxSize = 1 << 20
	// gossipQueue bounds the batches waiting for gossipBatcher (a batch is one admission
	// worker's round, or a slice of the pending log's resends).
	gossipQueue = 4096
	// maxTxBatchBytes bounds one gossiped batch on the wire.
	maxTxBatchBytes = gossipMaxSize + 64<<10
)

var errStopping = errors.New("node: shutting down")

type admitReq struct {
	raw  []byte
	tx   *state.Tx
	hash state.Hash
	err  error // the outcome: set by the admission worker before it closes its unit's done
}

// admitUnit is one request's transactions for the admission workers, taken whole by one worker
// and answered together: one channel per request, not one per transaction.
type admitUnit struct {
	reqs []*admitReq
	done chan struct{}
}

// decodedTx is a gossiped transaction that passed the topic validator.
type decodedTx struct {
	raw  []byte
	hash state.Hash
	tx   *state.Tx
}

func (n *Node) startAdmission(ctx context.Context) {
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.verifier.run(ctx) }()
	for i := 0; i < 2; i++ {
		n.wg.Add(1)
		go n.admitWorker(ctx)
	}
	n.wg.Add(5)
	go n.runPendingLog(ctx)
	go n.gossipBatcher(ctx)
	go n.gossipReceiver(ctx)
	go n.consensusSender(ctx)
	go n.authorDuplicates(ctx)
}

// Submit admits one transaction from the API: it returns once the transaction is in the mempool
// (and on its way to the other nodes) or refused.
func (n *Node) Submit(ctx context.Context, raw []byte) (state.Hash, error) {
	hs, errs := n.SubmitBatch(ctx, [][]byte{raw})
	return hs[0], errs[0]
}

// SubmitBatch admits several transactions at once, each with its own outcome. The admission
// workers verify whatever is queued together, so one request of many transactions costs one
// batch verification instead of many HTTP round trips.
func (n *Node) SubmitBatch(ctx context.Context, raws [][]byte) ([]state.Hash, []error) {
	hashes := make([]state.Hash, len(raws))
	errs := make([]error, len(raws))
	reqs := make([]*admitReq, len(raws))
	slab := make([]admitReq, len(raws)) // one allocation for the request's transactions
	var unit []*admitReq
	var busy map[state.Address]uint64                // by sender, the lowest nonce refused busy in this request
	room := n.gate.room(n.pool.Size(), n.pool.Own()) // once per request: the mempool's lock is the loop's too
	for i, raw := range raws {
		tx, err := state.DecodeTx(raw)
		if err != nil {
			errs[i] = err
			continue
		}
		hashes[i] = state.HashTx(raw)
		// The signature covers the chain ID, so a transaction for another chain would only be
		// refused as badly signed: say what is wrong instead, before spending a verification.
		if tx.Body.ChainID != n.chainID {
			errs[i] = fmt.Errorf("%w: %q, this chain is %q", state.ErrWrongChain, tx.Body.ChainID, n.chainID)
			n.rejected.put(hashes[i], errs[i].Error())
			continue
		}
		// Past max_pending only a transaction that closes its sender's nonce gap is taken
		// (admitWorker checks again, for requests that arrived together); the rest are refused
		// here, without taking room in the admission queue, where their retries would starve
		// the transactions that close gaps. Once one of a sender's is refused, so are its later
		// nonces in this request: taking them would open a gap.
		from, nonce := tx.Body.From, tx.Body.Nonce
		if low, ok := busy[from]; ok && nonce > low || room <= 0 && !n.pool.ClosesGap(from, nonce, n.nonceOf) {
			if busy == nil {
				busy = make(map[state.Address]uint64)
			}
			if low, ok := busy[from]; !ok || nonce < low {
				busy[from] = nonce
			}
			errs[i] = ErrMempoolFull
			continue
		}
		slab[i] = admitReq{raw: raw, tx: tx, hash: hashes[i]}
		reqs[i] = &slab[i]
		unit = append(unit, reqs[i])
		room--
	}
	if len(unit) == 0 {
		return hashes, errs
	}
	// The request goes to one admission worker whole, in order: split between the two workers,
	// one could refuse a sender's nonce for want of room while the other, a block later, took
	// its next ones, which then waited behind the gap until the client's retry of the first got
	// past a door that was shut most of the time (at 16,000 tx/s offered: ~1,000 accepted
	// transactions waiting 10-20 s, some for good once the client gave up).
	var refuse error
	u := &admitUnit{reqs: unit, done: make(chan struct{})}
	if !n.gate.enqueue(len(unit)) {
		// The admission workers are behind: refuse now (busy, retry later) rather than queue
		// behind them (overload.go).
		refuse = ErrMempoolFull
	} else {
		select {
		case n.admitCh <- u:
		case <-ctx.Done():
			refuse = ctx.Err()
		case <-n.stopping:
			refuse = errStopping
		}
		if refuse != nil {
			n.gate.dequeue(len(unit))
		}
	}
	if refuse != nil {
		for i := range reqs {
			if reqs[i] != nil {
				errs[i] = refuse
			}
		}
		return hashes, errs
	}
	return n.finishBatch(ctx, hashes, u, reqs, errs)
}

// finishBatch waits for the outcome of a request's transactions queued for admission (u), those
// of reqs that are not nil.
func (n *Node) finishBatch(ctx context.Context, hashes []state.Hash, u *admitUnit, reqs []*admitReq, errs []error) ([]state.Hash, []error) {
	var gone error
	select {
	case <-u.done:
	case <-ctx.Done():
		gone = ctx.Err()
	case <-n.stopping:
		gone = errStopping
	}
	for i, req := range reqs {
		switch {
		case req == nil:
		case gone != nil:
			errs[i] = gone
		default:
			if err := req.err; err != nil && !errors.Is(err, ErrTxKnown) && !errors.Is(err, ErrMempoolFull) {
				n.rejected.put(hashes[i], err.Error())
			}
			errs[i] = req.err
		}
	}
	return hashes, errs
}

// MaxNonceAhead is how far past its account's next nonce a pending transaction may be. It bounds
// what one account can park in the mempool: transactions that wait on a gap are never proposed,
// and without a bound one funded account could fill every node's mempool with them.
const MaxNonceAhead = 1024

// ErrNonceTooFar refuses a transaction whose nonce is more than MaxNonceAhead ahead.
var ErrNonceTooFar = fmt.Errorf("node: nonce more than %d ahead of the account's next nonce", MaxNonceAhead)

// errCatchingUp is why a node that is behind the chain refuses a far nonce as busy.
var errCatchingUp = errors.New("this node is catching up with the chain and cannot judge the nonce yet")

// checkTx is the state's pre-check plus the mempool's own admission policy.
func (n *Node) checkTx(tx *state.Tx) error {
	if err := n.st.CheckTx(tx); err != nil {
		if isStoreFault(err) {
			n.storeFailed("checking a transaction against the state", err)
		}
		return err
	}
	if tx.Body.Nonce > n.nonceOf(tx.Body.From)+MaxNonceAhead {
		if n.health.catchingUp.Load() {
			// Behind the chain, this node's nonces are stale: the transaction may well be
			// fine. Busy (503, retry here later or elsewhere), not a refusal that makes a client
			// drop the nonce and leave every later one behind a gap (a chaos run: 5 such
			// refusals by a node just restarted left 5,125 accepted transactions pending).
			return fmt.Errorf("%w: %w", ErrMempoolFull, errCatchingUp)
		}
		return ErrNonceTooFar
	}
	return nil
}

// admitWorker verifies API transactions in batches (whatever requests have queued up, up to
// admitBatch transactions, each request whole), so that under load signatures are batch-verified.
func (n *Node) admitWorker(ctx context.Context) {
	defer n.wg.Done()
	batch := make([]*admitReq, 0, admitBatch)
	var units []*admitUnit
	for {
		clear(batch)
		clear(units)
		batch, units = batch[:0], units[:0]
		select {
		case <-ctx.Done():
			return
		case u := <-n.admitCh:
			batch, units = append(batch, u.reqs...), append(units, u)
		}
	fill:
		for len(batch) < admitBatch {
			select {
			case u := <-n.admitCh:
				batch, units = append(batch, u.reqs...), append(units, u)
			default:
				break fill
			}
		}
		n.gate.dequeue(len(batch))
		errs := n.admit(ctx, batch)
		var admitted [][]byte
		for i, r := range batch {
			if errs[i] == nil {
				admitted = append(admitted, r.raw)
			}
			r.err = errs[i]
		}
		for _, u := range units {
			close(u.done)
		}
		if len(admitted) > 0 {
			// One hand-over per batch, not per transaction.
			select {
			case n.gossipCh <- admitted:
			default:
				// The gossip queue is full: this node still proposes them when it leads.
				n.metrics.gossipDropped.Add(float64(len(admitted)))
			}
		}
	}
}

// admit verifies, checks and adds a batch of API transactions, in order, and returns each one's
// outcome. Requests that passed the door together may hold more than the room left under
// max_pending: the excess is refused busy before it costs a verification (overload.go), except
// a transaction that closes its sender's nonce gap: it can be proposed at once and lets those
// waiting behind it go too. Refusing it would let transactions stuck behind a gap fill the
// mempool and keep out the very ones that unblock them. Once a sender's transaction is refused
// busy (no room, a full mempool), so are its later nonces in the batch: taking them would leave
// them pending behind a gap.
func (n *Node) admit(ctx context.Context, batch []*admitReq) []error {
	errs := make([]error, len(batch))
	var busy map[state.Address]uint64 // by sender, the lowest nonce refused busy
	refuse := func(i int, r *admitReq, err error) {
		errs[i] = err
		if !errors.Is(err, ErrMempoolFull) {
			return
		}
		if busy == nil {
			busy = make(map[state.Address]uint64)
		}
		if low, ok := busy[r.tx.Body.From]; !ok || r.tx.Body.Nonce < low {
			busy[r.tx.Body.From] = r.tx.Body.Nonce
		}
	}
	behind := func(r *admitReq) bool {
		low, ok := busy[r.tx.Body.From]
		return ok && r.tx.Body.Nonce > low
	}
	room := n.gate.room(n.pool.Size(), n.pool.Own())
	var txs []*state.Tx
	var hashes []state.Hash
	var idx []int
	for i, r := range batch {
		if behind(r) || room <= 0 && !n.pool.ClosesGap(r.tx.Body.From, r.tx.Body.Nonce, n.nonceOf) {
			refuse(i, r, ErrMempoolFull)
			continue
		}
		room--
		txs, hashes, idx = append(txs, r.tx), append(hashes, r.hash), append(idx, i)
	}
	for j, err := range n.verifier.verify(ctx, txs, hashes) {
		errs[idx[j]] = err
	}
	var logHashes []state.Hash
	var logRaws [][]byte
	for i, r := range batch {
		if errs[i] != nil {
			continue
		}
		err := ErrMempoolFull
		if !behind(r) {
			err = n.checkTx(r.tx)
		}
		if err == nil {
			err = n.pool.AddOwn(r.raw, r.hash, r.tx)
		}
		if err != nil {
			refuse(i, r, err)
			continue
		}
		logHashes, logRaws = append(logHashes, r.hash), append(logRaws, r.raw)
	}
	// Logged before the client hears "accepted" (pendinglog.go). A store that cannot take
	// it is a fault to report, not a reason to refuse: the transaction is in the mempool.
	if err := n.pending.add(logHashes, logRaws); err != nil {
		n.storeFailed("logging accepted transactions", err)
	}
	return errs
}

// gossipBatcher publishes admitted transactions in batches, collected for at most the configured
// interval: one pubsub message per batch instead of one per transaction.
func (n *Node) gossipBatcher(ctx context.Context) {
	defer n.wg.Done()
	interval := time.Duration(n.cfg.Mempool.GossipBatchMillis) * time.Millisecond
	var (
		batch [][]byte
		size  int
		timer = time.NewTimer(time.Hour)
		buf   []byte // the encoded batch, reused: pubsub keeps only its sealed copy
	)
	timer.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		buf = encodeTxBatch(buf[:0], batch)
		err := n.host.PublishTxs(ctx, buf)
		if err != nil && ctx.Err() == nil {
			n.log.Warn("gossiping transactions", "count", len(batch), "err", err)
		}
		clear(batch)
		batch, size = batch[:0], 0
	}
	for {
		select {
		case <-ctx.Done():
			return
		case raws := <-n.gossipCh:
			if len(batch) == 0 {
				timer.Reset(interval)
			}
			for _, raw := range raws {
				batch = append(batch, raw)
				size += len(raw)
				if len(batch) >= gossipMaxTxs || size >= gossipMaxSize {
					timer.Stop()
					flush()
					timer.Reset(interval)
				}
			}
			if len(batch) == 0 {
				timer.Stop()
			}
		case <-timer.C:
			flush()
		}
	}
}

// encodeTxBatch appends to dst a gossiped batch, a CBOR array of byte strings: the bytes
// state.Marshal(raws) gives, written without reflection.
func encodeTxBatch(dst []byte, raws [][]byte) []byte {
	dst = state.AppendCBORHead(dst, 4, uint64(len(raws)))
	for _, raw := range raws {
		dst = state.AppendCBORHead(dst, 2, uint64(len(raw)))
		dst = append(dst, raw...)
	}
	return dst
}

// validateTxBatch is the transaction topic's validator, run by pubsub before anything is delivered
// or relayed: honest nodes only gossip transactions they verified, so a batch with a malformed or
// wrongly signed transaction is Rejected and costs its sender.
func (n *Node) validateTxBatch(from string, data []byte) (p2p.Verdict, any) {
	if from == n.peerID {
		// Our own publication, validated synchronously inside PublishTxs: gossipBatcher built it
		// from transactions admitWorker verified and pooled a moment ago, so decoding and looking
		// them all up again (a quarter of the transactions a node decodes) would find nothing.
		// An empty batch, not nil: the receiver still counts this node as one that takes
		// submissions, as it did when its own batches came back decoded.
		return p2p.Accept, []decodedTx{}
	}
	if len(data) > maxTxBatchBytes {
		return p2p.Reject, nil
	}
	// The transactions stay sub-slices of data, which pubsub hands over and never reuses.
	raws, err := state.SplitByteStrings(data, gossipMaxTxs)
	if err != nil || len(raws) == 0 {
		return p2p.Reject, nil
	}
	out := make([]decodedTx, 0, len(raws))
	txs := make([]*state.Tx, 0, len(raws))
	hashes := make([]state.Hash, 0, len(raws))
	for _, raw := range raws {
		tx, err := state.DecodeTx(raw)
		if err != nil || tx.Body.ChainID != n.chainID {
			return p2p.Reject, nil
		}
		h := state.HashTx(raw)
		out = append(out, decodedTx{raw: raw, hash: h, tx: tx})
		txs, hashes = append(txs, tx), append(hashes, h)
	}
	for _, err := range n.verifier.verify(context.Background(), txs, hashes) {
		if errors.Is(err, errStopping) {
			return p2p.Ignore, nil
		}
		if err != nil {
			return p2p.Reject, nil
		}
	}
	return p2p.Accept, out
}

// gossipReceiver adds gossiped transactions to the mempool; stateful checks can fail here for
// honest reasons (a nonce already used), so failures are not held against the sender.
func (n *Node) gossipReceiver(ctx context.Context) {
	defer n.wg.Done()
	heard := map[string]time.Time{} // peers by when their gossip last brought transactions
	tick := time.NewTicker(pendingWindow / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n.gate.heard(heard, now)
		case m := <-n.host.Txs():
			txs, ok := m.Decoded.([]decodedTx)
			if !ok {
				continue
			}
			if _, known := heard[m.From]; !known {
				heard[m.From] = time.Now()
				n.gate.heard(heard, time.Now())
			}
			heard[m.From] = time.Now()
			for _, d := range txs {
				if n.pool.Has(d.hash) {
					continue
				}
				err := n.checkTx(d.tx)
				if err == nil {
					err = n.pool.Add(d.raw, d.hash, d.tx)
				}
				if err != nil && !errors.Is(err, ErrTxKnown) {
					n.metrics.gossipNotPooled.WithLabelValues(notPooledReason(err)).Inc()
					// Verified, but not pending here (no room, a nonce far ahead, one used):
					// kept a while in case a proposal by reference orders it (byref.go).
					n.recent.put(d.hash, d.raw)
				}
			}
		}
	}
}

// validateConsensus is the consensus topic's validator: decode with limits, then check shape and
// signatures against the validator set, off the loop. Stale messages are still delivered: they
// tell the loop that a peer lags and needs a decision.
func (n *Node) validateConsensus(from string, data []byte) (p2p.Verdict, any) {
	// Our own publications are validated too, synchronously; they were built here, and pubsub
	// drops network copies that claim our ID, so they need no second decode and verify.
	if from == n.peerID {
		return p2p.Accept, nil
	}
	if isEvidence(data) {
		return n.validateEvidence(data)
	}
	if isProposalRef(data) {
		return n.validateProposalRef(from, data)
	}
	m, err := consensus.DecodeMessage(data, MaxBlockBytes+64<<10)
	if err != nil {
		return p2p.Reject, nil
	}
	if why := n.outsideWindow(from, m); why != "" {
		n.metrics.outOfWindow.WithLabelValues(why).Inc()
		return p2p.Ignore, nil
	}
	vals, final := n.validatorsFinal(m.Height)
	if err := consensus.VerifyMessageWith(n.chainID, vals, m, n.consensusSigs); err != nil {
		if !final {
			// The set of that height is not final here yet (this node lags, and a block it has
			// not applied may change it): the sender may be honest, so no penalty.
			return p2p.Ignore, nil
		}
		return p2p.Reject, nil
	}
	// The one clock check, kept out of the deterministic core: honest nodes do not take up a
	// proposal stamped far in their future, or a leader could push block time (and its own
	// successors' timestamps) to the end of time. Certified decisions are not second-guessed.
	if m.Type == consensus.MsgPrePrepare {
		t, err := blockTime(m.Value)
		if err != nil {
			return p2p.Reject, nil
		}
		if t > time.Now().Add(maxClockDrift).UnixMilli() {
			return p2p.Ignore, nil
		}
	}
	return n.ownCopy(m), m
}

// ownCopy is the verdict on a verified consensus message from another peer: Deliver (not relay)
// when this node's own validator signed it, else Accept. Such a copy is a replay or an echo (the
// node published the message to every peer itself); passed on by this node, it would reach the
// others from its author's own peer, where it counts as the author alive, or lagging at its
// height (markRelayed): replayed old votes made honest leaders look behind on an idle chain, and
// the others gave up on them (issue #9; the simulator's TestSimulatorEchoedVotesCostNoTurn). The core
// still sees it, to notice another process signing with this node's key.
func (n *Node) ownCopy(m *consensus.Message) p2p.Verdict {
	peers := n.sched.Load().at(m.Height).Peers
	if m.Type != consensus.MsgDecision && int(m.From) < len(peers) && peers[m.From] == n.peerID {
		return p2p.Deliver
	}
	return p2p.Accept
}

// maxClockDrift is how far ahead of this node's clock a proposed block's time may be.
const maxClockDrift = 30 * time.Second

// blockTime reads a block's header time without decoding its transactions.
func blockTime(value []byte) (int64, error) {
	var b struct {
		Header Header          `cbor:"1,keyasint"`
		Txs    cbor.RawMessage `cbor:"2,keyasint"`
		// Evidence is in the block only when there is some; skipped here like the transactions.
		Evidence cbor.RawMessage `cbor:"3,keyasint,omitempty"`
	}
	if err := state.Unmarshal(value, &b); err != nil {
		return 0, err
	}
	return b.Header.Time, nil
}

// consensusSender publishes the loop's outgoing messages so the loop never waits on the network.
func (n *Node) consensusSender(ctx context.Context) {
	defer n.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-n.sendCh:
			if err := n.host.PublishConsensus(ctx, b); err != nil && ctx.Err() == nil {
				n.log.Warn("publishing consensus message", "err", fmt.Sprint(err))
			}
		}
	}
}
