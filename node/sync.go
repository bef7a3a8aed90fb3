package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// Block sync (issue #5): a node that is behind — started after a wipe, added late, or back from a
// long stop — fetches committed blocks with their certificates from peers that are ahead, checks
// each certificate against the validator set in force at its height and the header chain, then
// hands them to the loop, which executes and stores them exactly as it does a decided block and
// restarts the consensus core at the new height. Consensus's own catch-up (a peer answers a
// validator a height or two behind with the decision it is missing) still covers short gaps.

// Tunables of block sync.
const (
	syncBatch          = 128             // blocks per request
	syncPollInterval   = 2 * time.Second // how often peers' heights are asked for when nothing else prompts it
	syncStatusTimeout  = 2 * time.Second
	syncFetchTimeout   = 15 * time.Second
	syncStuckAfter     = 3 * time.Second // a peer is ahead and our height has not moved for this long
	syncDropWithheld   = 30 * time.Second
	syncDropLied       = 10 * time.Minute
	syncDropBroken     = 5 * time.Second // its stream was reset or its connection closed
	syncMaxDroppedKept = 1024
	syncMinRoundGap    = 200 * time.Millisecond
	syncLocalBackoff   = 30 * time.Second // after this node failed to apply certified blocks
)

// syncStatusGrace: a round waits this long after the first peer answered for the others, not
// syncStatusTimeout. A frozen peer (SIGSTOP, a full disk) keeps its connection and never answers;
// waiting for it held every round of a node catching up for 2 s (issue #9: the longest gap of a
// chaos run, 4.02 s, began so).
const syncStatusGrace = 250 * time.Millisecond

var (
	// ErrSyncBadBlock is a block or certificate served by block sync that does not verify: the
	// peer that served it lied.
	ErrSyncBadBlock = errors.New("node: sync: peer served an invalid block")
	// ErrSyncWithheld is a peer that claimed blocks it then did not serve.
	ErrSyncWithheld = errors.New("node: sync: peer withheld blocks")
)

// syncNet is what block sync needs from the network; *p2p.Host implements it.
type syncNet interface {
	ConnectedPeers() []string
	SyncStatus(ctx context.Context, peer string) (uint64, error)
	FetchBlocks(ctx context.Context, peer string, from uint64, max int) ([]p2p.SyncedBlock, error)
}

// syncedBlock is a block whose certificate and place in the fetched chain have been verified.
type syncedBlock struct {
	height uint64
	value  []byte
	block  *Block
	cert   consensus.Certificate
	// vals is the set the certificate was verified against: the one scheduled when it was
	// fetched, which a block applied since may have changed (see applySynced).
	vals consensus.ValidatorSet
	// decoded holds the block's transactions that preverify decoded, by hash: execution takes
	// them instead of decoding the same bytes again (a tenth of block sync's CPU, issue #10).
	decoded map[state.Hash]*state.Tx
}

// syncApply is a batch handed to the loop, and its answer.
type syncApply struct {
	blocks []syncedBlock
	done   chan error
	taken  int // how many of blocks the loop went through in its turn; set before done
}

// syncApplySlice bounds a turn of the loop spent applying synced blocks. A batch (up to
// syncBatch blocks: seconds of work under load) is applied a slice at a time, and between slices
// the loop serves consensus, its watchdog and GET /healthz as usual: a node catching up used to
// be reported as "event loop has not answered" and fail its liveness probe.
const syncApplySlice = 200 * time.Millisecond

// syncMetrics are block sync's Prometheus counters.
type syncMetrics struct {
	blocks  prometheus.Counter
	txs     prometheus.Counter
	dropped *prometheus.CounterVec
}

func newSyncMetrics(reg prometheus.Registerer) *syncMetrics {
	m := &syncMetrics{
		blocks: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_sync_blocks_total",
			Help: "Blocks fetched by block sync, verified and applied."}),
		txs: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_sync_txs_total",
			Help: "Transactions in blocks applied by block sync."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_sync_peers_dropped_total",
			Help: "Peers dropped from block sync's candidates, by reason (withheld, invalid, broken)."}, []string{"reason"}),
	}
	reg.MustRegister(m.blocks, m.txs, m.dropped)
	return m
}

// syncer runs block sync on its own goroutine; the loop alone applies what it fetched.
type syncer struct {
	net          syncNet
	chainID      string
	validatorsAt func(height uint64) (vals consensus.ValidatorSet, final bool)
	blocks       *BlockStore
	sigs         *sigCache
	// apply hands verified blocks to the loop and waits until they are applied.
	apply   func(ctx context.Context, blocks []syncedBlock) error
	log     *slog.Logger
	metrics *syncMetrics
	kick    chan struct{}
	// catchingUp is set while a round fetches blocks (the node's health: /readyz, metrics).
	catchingUp *atomic.Bool
	// peersTip and tipKnown: the peers' height from the last round any peer answered (readiness).
	peersTip *atomic.Uint64
	tipKnown *atomic.Bool

	// Owned by the syncer's goroutine.
	dropped      map[string]time.Time // peer -> until when it is not asked
	lastHeight   uint64
	lastProgress time.Time
	notBefore    time.Time // no round before this: kicks come with every message from ahead
	// chunkTxs, firstChunkTxs: syncChunkTxs and syncFirstChunkTxs (tests cut finer).
	chunkTxs, firstChunkTxs int
}

func (n *Node) newSyncer(net syncNet) *syncer {
	return &syncer{
		net: net, chainID: n.chainID, validatorsAt: n.validatorsFinal, blocks: n.blocks, sigs: n.sigs,
		apply: n.applySyncedFromLoop, log: n.log.With("component", "sync"),
		metrics: newSyncMetrics(n.metrics.reg), kick: make(chan struct{}, 1),
		dropped: make(map[string]time.Time), catchingUp: &n.health.catchingUp,
		peersTip: &n.health.peersTip, tipKnown: &n.health.tipKnown,
		chunkTxs: syncChunkTxs, firstChunkTxs: syncFirstChunkTxs,
	}
}

// wake asks the syncer to look at peers' heights now: something suggests this node is behind.
// It never blocks.
func (s *syncer) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run syncs whenever a peer is ahead, until ctx ends.
func (s *syncer) run(ctx context.Context) {
	ticker := time.NewTicker(syncPollInterval)
	defer ticker.Stop()
	s.lastProgress = time.Now()
	for {
		s.notBefore = time.Now().Add(syncMinRoundGap)
		if s.round(ctx) && ctx.Err() == nil && time.Until(s.notBefore) <= syncMinRoundGap {
			// The chain moved on while the round fetched: go again at once rather than chase a
			// busy chain's tip a round per syncMinRoundGap (issue #9: a node back from an outage
			// trailed a chain at 60 blocks/s by 1 to 15 blocks for 20 s). A round that fetches
			// nothing (the gap is consensus's to close) waits as before.
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-ticker.C:
		}
		if wait := time.Until(s.notBefore); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// round asks the connected peers for their heights and, if this node is behind, fetches blocks
// until it has what they claimed or runs out of peers. It reports whether it applied any.
// catchingUp stays set after a round that applied blocks: the chain moved on meanwhile, and only
// the next round (run starts it at once) can say whether the node is at the tip (/readyz).
func (s *syncer) round(ctx context.Context) (applied bool) {
	defer func() {
		if !applied {
			s.catchingUp.Store(false)
		}
	}()
	own := s.blocks.Height()
	if own != s.lastHeight {
		s.lastHeight, s.lastProgress = own, time.Now()
	}
	heights := s.statuses(ctx)
	var target uint64
	for _, h := range heights {
		target = max(target, h)
	}
	if len(heights) > 0 && s.peersTip != nil {
		vals, _ := s.validatorsAt(own + 1)
		s.peersTip.Store(tipOf(heights, (len(vals.Validators)-1)/3))
		s.tipKnown.Store(true)
	}
	// A gap consensus closes by itself is left to it, unless our height has stopped moving.
	if target <= own || (target <= own+consensus.MaxFutureHeights && time.Since(s.lastProgress) < syncStuckAfter) {
		return false
	}
	s.log.Info("behind peers; syncing blocks", "height", own, "peers_height", target, "peers", len(heights))
	s.catchingUp.Store(true)
	start, from := time.Now(), own+1
	txs := s.fetchAll(ctx, heights)
	if got := s.blocks.Height(); got >= from {
		secs := time.Since(start).Seconds()
		s.log.Info("synced blocks", "from", from, "to", got, "blocks", got-from+1, "txs", txs,
			"seconds", fmt.Sprintf("%.2f", secs), "blocks_per_s", fmt.Sprintf("%.0f", float64(got-from+1)/secs),
			"txs_per_s", fmt.Sprintf("%.0f", float64(txs)/secs))
		return true
	}
	return false
}

// Pipeline of block sync (issue #10). A fetched batch (up to syncBatch blocks: with full blocks,
// 50,000 transactions and more) is pre-verified in chunks of about syncChunkTxs transactions,
// the first ones smaller, and each verified chunk is queued for the loop: the loop executes one
// while the next is verified on the other core, and starts after a chunk's verification, not a
// whole batch's. When the loop is the slower stage, it takes every chunk queued in one turn (one
// run written to disk, not one per chunk). The next batch is fetched, and its certificates
// checked, while this one is verified and applied. Memory stays bounded: one batch fetched ahead,
// syncQueuedChunks verified and waiting, and what the loop is applying.
const (
	syncChunkTxs      = 4096
	syncFirstChunkTxs = 512 // the chunk sizes double from this one up to syncChunkTxs
	syncQueuedChunks  = 4
)

// syncChunks cuts blocks into consecutive chunks of about size transactions each (at least one
// block), the sizes doubling from first up to size.
func syncChunks(blocks []syncedBlock, first, size int) [][]syncedBlock {
	var out [][]syncedBlock
	want, n, from := min(first, size), 0, 0
	for i := range blocks {
		n += len(blocks[i].block.Txs)
		if n >= want || i == len(blocks)-1 {
			out = append(out, blocks[from:i+1])
			from, n, want = i+1, 0, min(2*want, size)
		}
	}
	return out
}

// syncApplier hands verified chunks to the loop in order, from its own goroutine, taking all
// that are queued at once. After the first failure it applies nothing more.
type syncApplier struct {
	queue   chan []syncedBlock
	failed  chan struct{} // closed at the first failure
	err     error         // the first failure; read after failed is closed or wg waited for
	wg      sync.WaitGroup
	stopped chan struct{} // closed when the goroutine returns
}

func (s *syncer) startApplier(ctx context.Context) *syncApplier {
	a := &syncApplier{queue: make(chan []syncedBlock, syncQueuedChunks), failed: make(chan struct{}),
		stopped: make(chan struct{})}
	go func() {
		defer close(a.stopped)
		for chunk := range a.queue {
			blocks, chunks := chunk, 1
		more:
			for range syncQueuedChunks { // bounded: the syncer may be adding more meanwhile
				select {
				case c, ok := <-a.queue:
					if !ok {
						break more
					}
					blocks, chunks = append(slices.Clip(blocks), c...), chunks+1
				default:
					break more
				}
			}
			if a.err == nil {
				if err := s.apply(ctx, blocks); err != nil {
					a.err = err
					close(a.failed)
				} else {
					n := 0
					for i := range blocks {
						n += len(blocks[i].block.Txs)
					}
					s.metrics.blocks.Add(float64(len(blocks)))
					s.metrics.txs.Add(float64(n))
				}
			}
			a.wg.Add(-chunks)
		}
	}()
	return a
}

// put queues a verified chunk, waiting while the queue is full. False: an earlier chunk failed,
// and this one is not taken.
func (a *syncApplier) put(chunk []syncedBlock) bool {
	a.wg.Add(1)
	select {
	case a.queue <- chunk:
		return true
	case <-a.failed:
		a.wg.Done()
		return false
	}
}

// wait waits until every chunk queued is applied (or passed over after a failure) and returns
// the first failure.
func (a *syncApplier) wait() error {
	a.wg.Wait()
	select {
	case <-a.failed:
		return a.err
	default:
		return nil
	}
}

// close ends the goroutine once the queue is drained.
func (a *syncApplier) close() {
	close(a.queue)
	<-a.stopped
}

// syncFetch is a batch fetched and checked by fetchVerified, and from whom.
type syncFetch struct {
	peer  string
	batch []syncedBlock
	err   error
}

// fetchAll fetches batches from the peers in heights until none claims more, switching peers when
// one fails, and returns the transactions applied. It pipelines (see syncChunkTxs): the next
// batch is fetched while this one is verified and applied, a chunk is verified while the loop
// applies the one before, so the fetched tip (next, prev) runs ahead of the stored one. Every
// chunk's signatures are verified before it goes to the loop, and the loop applies chunks in
// order; the first that fails stops the rest.
func (s *syncer) fetchAll(ctx context.Context, heights map[string]uint64) int {
	var (
		txs      int
		next     uint64
		prev     state.Hash
		inflight bool // chunks queued since the last settle
		stopped  bool
		ahead    chan syncFetch // the fetch in flight, if any
	)
	applier := s.startApplier(ctx)
	defer applier.close()
	actx, cancelAhead := context.WithCancel(ctx)
	defer func() {
		cancelAhead()
		if ahead != nil {
			<-ahead
		}
	}()
	settle := func() {
		if !inflight {
			return
		}
		if err := applier.wait(); err != nil {
			if !errors.Is(err, context.Canceled) {
				s.log.Error("block sync stopped", "err", err, "retry_in", syncLocalBackoff)
				s.notBefore = time.Now().Add(syncLocalBackoff)
			}
			stopped = true
		}
		inflight = false
	}
	defer settle()
	for ctx.Err() == nil && !stopped {
		if !inflight && ahead == nil {
			// Nothing in flight: start from the store, which consensus may also have moved.
			own := s.blocks.Height()
			if next != own+1 {
				next = own + 1
				var err error
				if prev, err = s.hashAt(own); err != nil {
					s.log.Error("block sync stopped", "err", err, "retry_in", syncLocalBackoff)
					s.notBefore = time.Now().Add(syncLocalBackoff)
					return txs
				}
			}
		}
		var f syncFetch
		if ahead != nil {
			f, ahead = <-ahead, nil
		} else {
			if f.peer = s.pick(heights, next-1); f.peer == "" {
				break
			}
			f.batch, f.err = s.fetchVerified(ctx, f.peer, next, prev, heights[f.peer])
		}
		if len(f.batch) > 0 {
			last := &f.batch[len(f.batch)-1]
			next, prev = last.height+1, state.Hash(last.cert.Digest)
			if f.err == nil {
				if q := s.pick(heights, next-1); q != "" {
					ahead = make(chan syncFetch, 1)
					go func(q string, from uint64, prev state.Hash, claimed uint64, out chan<- syncFetch) {
						batch, err := s.fetchVerified(actx, q, from, prev, claimed)
						out <- syncFetch{peer: q, batch: batch, err: err}
					}(q, next, prev, heights[q], ahead)
				}
			}
			first := s.chunkTxs
			if !inflight {
				first = s.firstChunkTxs // the loop is idle: give it work soon
			}
			for _, chunk := range syncChunks(f.batch, first, s.chunkTxs) {
				s.preverify(chunk)
				if !applier.put(chunk) {
					inflight = true
					settle() // reports the failure
					break
				}
				inflight = true
				for i := range chunk {
					txs += len(chunk[i].block.Txs)
				}
			}
		}
		if f.err != nil {
			if ctx.Err() == nil {
				s.drop(f.peer, f.err)
			}
			delete(heights, f.peer)
		} else if len(f.batch) == 0 {
			// Nothing verified and nothing wrong: the validator set of next is not final until
			// the blocks in flight are applied (verify). Wait for them rather than ask again.
			settle()
		}
	}
	return txs
}

// hashAt is the hash of stored block h (zero for h = 0, genesis).
func (s *syncer) hashAt(h uint64) (state.Hash, error) {
	if h == 0 {
		return state.Hash{}, nil
	}
	value, _, err := s.blocks.Block(h)
	if err != nil {
		return state.Hash{}, fmt.Errorf("%w: reading block %d: %w", errSyncLocal, h, err)
	}
	return state.Hash(consensus.DigestOf(value)), nil
}

// statuses asks every connected peer not dropped for its height, concurrently, and returns the
// answers in by syncStatusGrace after the first one (or syncStatusTimeout if none came); a peer
// not in by then is asked again next round.
func (s *syncer) statuses(ctx context.Context) map[string]uint64 {
	now := time.Now()
	type answer struct {
		peer   string
		height uint64
		err    error
	}
	cctx, cancel := context.WithTimeout(ctx, syncStatusTimeout)
	defer cancel() // ends the requests still out
	peers := s.net.ConnectedPeers()
	answers := make(chan answer, len(peers)) // never blocks a request that ends after we returned
	asked := 0
	for _, p := range peers {
		if until, ok := s.dropped[p]; ok {
			if now.Before(until) {
				continue
			}
			delete(s.dropped, p)
		}
		asked++
		go func() {
			h, err := s.net.SyncStatus(cctx, p)
			answers <- answer{p, h, err}
		}()
	}
	out := make(map[string]uint64)
	var grace <-chan time.Time
	for ; asked > 0; asked-- {
		select {
		case a := <-answers:
			if a.err != nil {
				continue // not a sync peer (yet), or slow: asked again next round
			}
			out[a.peer] = a.height
			if grace == nil {
				t := time.NewTimer(syncStatusGrace)
				defer t.Stop()
				grace = t.C
			}
		case <-grace:
			return out
		case <-cctx.Done():
			return out
		}
	}
	return out
}

// pick chooses the peer to ask for blocks above own: one that claims more, preferring the
// highest, and among equals spreading requests by height so no one peer serves everything.
func (s *syncer) pick(heights map[string]uint64, own uint64) string {
	var best []string
	var top uint64
	for p, h := range heights {
		switch {
		case h <= own:
		case h > top:
			top, best = h, []string{p}
		case h == top:
			best = append(best, p)
		}
	}
	if len(best) == 0 {
		return ""
	}
	slices.Sort(best)
	return best[int(own/syncBatch)%len(best)]
}

// drop removes a peer from the candidates for a while, longer for a lie than for a silence.
func (s *syncer) drop(p string, err error) {
	reason, d := "withheld", syncDropWithheld
	switch {
	case errors.Is(err, ErrSyncBadBlock) || errors.Is(err, p2p.ErrSyncResponse):
		reason, d = "invalid", syncDropLied
	case errors.Is(err, p2p.ErrSyncBroken):
		// A busy server, a restart, a link reset: no lie, and no reason to go without an
		// honest peer for long (issue #9: a link reset in mid-sync cost ten minutes).
		reason, d = "broken", syncDropBroken
	}
	if len(s.dropped) >= syncMaxDroppedKept {
		clear(s.dropped)
	}
	s.dropped[p] = time.Now().Add(d)
	s.metrics.dropped.WithLabelValues(reason).Inc()
	s.log.Warn("dropped a peer from block sync", "peer", p, "reason", reason, "for", d, "err", err)
}

// errSyncLocal marks a failure on this node's side, which no other peer would fix.
var errSyncLocal = errors.New("node: sync: this node cannot apply certified blocks")

// fetchVerified asks p for blocks from `from` (it claimed `claimed`), whose parent is prev, and
// returns the prefix that verifies. An error says why p should not be asked again for now.
func (s *syncer) fetchVerified(ctx context.Context, p string, from uint64, prev state.Hash, claimed uint64) ([]syncedBlock, error) {
	cctx, cancel := context.WithTimeout(ctx, syncFetchTimeout)
	got, fetchErr := s.net.FetchBlocks(cctx, p, from, int(min(claimed-from+1, syncBatch)))
	cancel()
	verified, verifyErr := s.verify(from, prev, got)
	switch {
	case verifyErr != nil:
		return verified, verifyErr
	case fetchErr != nil:
		return verified, fetchErr
	case len(got) == 0:
		return nil, fmt.Errorf("%w: claimed height %d, served nothing from %d", ErrSyncWithheld, claimed, from)
	}
	return verified, nil
}

// verify checks fetched blocks in order from `from`, the first one's parent being prev: each
// certificate against the validator set at its height and for the block's hash, and each header
// (chain ID, height, parent hash; the transactions hash in DecodeBlock). It returns the verified
// prefix and, if a block failed, why. The state root and time are checked against the state when
// the loop applies them (CheckDecision).
func (s *syncer) verify(from uint64, prev state.Hash, got []p2p.SyncedBlock) ([]syncedBlock, error) {
	out := make([]syncedBlock, 0, len(got))
	for i := range got {
		g := &got[i]
		h := from + uint64(i)
		vals, final := s.validatorsAt(h)
		b, cert, err := verifySynced(s.chainID, vals, h, prev, g)
		if err != nil {
			if !final && errors.Is(err, consensus.ErrInvalidCertificate) {
				// The set of h is not final until the blocks before it are applied (one of
				// them may schedule a change; with fetches pipelined ahead of the loop, several
				// may be unapplied): not the peer's fault. Apply the prefix, then fetch the
				// rest again with the schedule those blocks leave.
				return out, nil
			}
			return out, err
		}
		out = append(out, syncedBlock{height: h, value: g.Block, block: b, cert: *cert, vals: vals})
		prev = state.Hash(cert.Digest)
	}
	return out, nil
}

// verifySynced checks one fetched block at height h whose parent hash must be prev.
func verifySynced(chainID string, vals consensus.ValidatorSet, h uint64, prev state.Hash, g *p2p.SyncedBlock) (*Block, *consensus.Certificate, error) {
	if g.Height != h {
		return nil, nil, fmt.Errorf("%w: height %d where %d was due", ErrSyncBadBlock, g.Height, h)
	}
	var cert consensus.Certificate
	if err := state.Unmarshal(g.Certificate, &cert); err != nil {
		return nil, nil, fmt.Errorf("%w: certificate %d: %w", ErrSyncBadBlock, h, err)
	}
	if cert.Height != h || cert.Digest != consensus.DigestOf(g.Block) {
		return nil, nil, fmt.Errorf("%w: certificate for height %d, digest %s does not certify block %d", ErrSyncBadBlock,
			cert.Height, cert.Digest, h)
	}
	if err := consensus.VerifyCertificate(chainID, vals, &cert); err != nil {
		return nil, nil, fmt.Errorf("%w: block %d: %w", ErrSyncBadBlock, h, err)
	}
	b, err := DecodeBlock(g.Block)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: block %d: %w", ErrSyncBadBlock, h, err)
	}
	switch hd := &b.Header; {
	case hd.ChainID != chainID:
		return nil, nil, fmt.Errorf("%w: block %d of chain %q", ErrSyncBadBlock, h, hd.ChainID)
	case hd.Height != h:
		return nil, nil, fmt.Errorf("%w: block %d says height %d", ErrSyncBadBlock, h, hd.Height)
	case hd.PrevHash != prev:
		return nil, nil, fmt.Errorf("%w: block %d has parent %s, want %s", ErrSyncBadBlock, h, hd.PrevHash, prev)
	}
	return b, &cert, nil
}

// preverify batch-verifies the signatures of the blocks' transactions off the loop, so that
// executing them there finds them in the signature cache (as gossiped ones are). A transaction
// whose signature fails stays out of the cache; execution rejects it as it would anyway. What it
// decoded it keeps in each block (decoded) for execution. Decoding and hashing, like the
// verification, are spread over the CPUs.
func (s *syncer) preverify(blocks []syncedBlock) {
	type item struct {
		block int
		raw   []byte
		hash  state.Hash
		tx    *state.Tx
	}
	var items []item
	for i := range blocks {
		for _, raw := range blocks[i].block.Txs {
			items = append(items, item{block: i, raw: raw})
		}
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), len(items)/256))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := w; j < len(items); j += workers {
				it := &items[j]
				it.hash = state.HashTx(it.raw)
				if s.sigs.Verified(it.hash) {
					continue
				}
				if tx, err := state.DecodeTx(it.raw); err == nil {
					it.tx = tx
				}
			}
		}()
	}
	wg.Wait()
	var txs []*state.Tx
	var hashes []state.Hash
	for j := range items {
		it := &items[j]
		if it.tx == nil {
			continue
		}
		b := &blocks[it.block]
		if b.decoded == nil {
			b.decoded = make(map[state.Hash]*state.Tx, len(b.block.Txs))
		}
		b.decoded[it.hash] = it.tx
		txs, hashes = append(txs, it.tx), append(hashes, it.hash)
	}
	for i, err := range state.VerifyTxs(s.chainID, txs) {
		if err == nil {
			s.sigs.add(hashes[i])
		}
	}
}

// applySyncedFromLoop hands blocks to the loop and waits for its answer, a turn of the loop at
// a time (serveSyncApply).
func (n *Node) applySyncedFromLoop(ctx context.Context, blocks []syncedBlock) error {
	for len(blocks) > 0 {
		req := &syncApply{blocks: blocks, done: make(chan error, 1)}
		select {
		case n.syncCh <- req:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-req.done:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		blocks = blocks[req.taken:]
	}
	return nil
}

// serveSyncApply is the loop's turn on a batch from block sync: it applies blocks for up to
// n.syncSlice, says how far it went, and restarts the core at the new tip if the chain moved.
// It returns the blocks applied and what is fatal for the loop.
func (n *Node) serveSyncApply(req *syncApply) (applied int, fatal error) {
	applied, taken, local, fatal := n.applySyncedWithin(req.blocks, n.syncSlice)
	req.taken = taken
	if applied > 0 {
		// The chain moved past the core's height: start a core at the new tip. What it signed
		// below that height is settled, and the WAL was reset with each block.
		if err := n.startCore(nil); err != nil {
			req.done <- err
			return applied, err
		}
	}
	if fatal != nil {
		req.done <- fatal
		return applied, fatal // lost durability, as in handleReady
	}
	req.done <- local
	return applied, nil
}

// applySynced runs on the loop: it applies verified blocks that follow the tip exactly as a
// decided block is applied (commit), skipping those consensus decided meanwhile. A block that
// does not fit our state although a quorum certified it means this node's state or software
// differs from theirs: that is errSyncLocal, and stops sync. A failure to store or execute is
// lost durability, returned as fatal for the loop.
func (n *Node) applySynced(blocks []syncedBlock) (applied int, local, fatal error) {
	applied, _, local, fatal = n.applySyncedWithin(blocks, 0)
	return applied, local, fatal
}

// applySyncedWithin is applySynced that stops after the block during which budget ran out (0:
// no limit); taken is how many of blocks it went through, at least one.
func (n *Node) applySyncedWithin(blocks []syncedBlock, budget time.Duration) (applied, taken int, local, fatal error) {
	start := time.Now()
	n.beginSyncRun()
	defer func() {
		// What was applied goes to disk whatever stopped the batch.
		if err := n.endSyncRun(); err != nil && fatal == nil {
			fatal = fmt.Errorf("node: applying synced blocks: %w", err)
		}
	}()
	for i := range blocks {
		taken = i + 1
		if i > 0 && budget > 0 && time.Since(start) >= budget {
			return applied, i, nil, nil
		}
		b := &blocks[i]
		if b.height <= n.blocks.Height() {
			continue
		}
		// Verified off the loop against the set scheduled then; a block applied since may have
		// scheduled another. Now that the parent is applied, the set of this height is final.
		if vals := n.validatorsAt(b.height); !sameValidators(vals, b.vals) {
			if err := consensus.VerifyCertificate(n.chainID, vals, &b.cert); err != nil {
				return applied, taken, fmt.Errorf("%w: block %d: %w", ErrSyncBadBlock, b.height, err), nil
			}
		}
		n.sigs.offerSynced(b.decoded)
		n.syncDecoded = b
		err := n.CheckDecision(b.height, b.value)
		n.syncDecoded = nil
		n.sigs.offerSynced(nil)
		if err != nil {
			return applied, taken, fmt.Errorf("%w: block %d: %w", errSyncLocal, b.height, err), nil
		}
		if err := n.commitBlock(consensus.Committed{Height: b.height, Value: b.value, Certificate: b.cert}, false, false); err != nil {
			return applied, taken, nil, fmt.Errorf("node: applying synced block %d: %w", b.height, err)
		}
		applied++
		if n.syncRunFull() {
			if err := n.endSyncRun(); err != nil {
				return applied, taken, nil, fmt.Errorf("node: applying synced blocks: %w", err)
			}
			n.beginSyncRun()
		}
	}
	return applied, taken, nil, nil
}

// SyncHeight implements p2p.SyncSource: the last stored block, which carries its certificate.
func (n *Node) SyncHeight() uint64 { return n.blocks.Height() }

// SyncBlocks implements p2p.SyncSource from the block store.
func (n *Node) SyncBlocks(from uint64, max, maxBytes int) ([]p2p.SyncedBlock, error) {
	var out []p2p.SyncedBlock
	if from < n.blocks.Earliest() {
		return nil, nil // not held here (pruned, or before this node's state sync): ask others
	}
	size := 0
	for h := from; h <= n.blocks.Height() && len(out) < max; h++ {
		value, cert, err := n.blocks.Block(h)
		if err != nil {
			if isStoreFault(err) {
				n.storeFailed(fmt.Sprintf("reading block %d for a peer's block sync", h), err)
			}
			return out, err
		}
		cb, err := state.Marshal(cert)
		if err != nil {
			return out, err
		}
		if len(out) > 0 && size+len(value)+len(cb) > maxBytes {
			break
		}
		size += len(value) + len(cb)
		out = append(out, p2p.SyncedBlock{Height: h, Block: value, Certificate: cb})
	}
	return out, nil
}
