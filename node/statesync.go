package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/node/light"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
	"github.com/guild-ledger/guild/state/merkle"
)

// State sync (issue 13): a node with no state fetches the newest snapshot its peers offer,
// checks it against a certified header, writes it as its state, and then starts as any node
// does, block-syncing only the blocks after the snapshot.
//
// Trust. An offer carries the manifest, the block at its height h and block h+1 with their
// certificates, the number of validator set changes from genesis up to block h+1 and a proof
// of the validator schedule against block h+1's state root. The joining node holds only the
// genesis set; it fetches each change from the offering peer and follows them as the light
// client does (node/light: each new set proven against a block the set before it certified),
// then checks block h+1's certificate against the set so reached, and the schedule proof shows
// that this is the set of h+1: no change was left out. Block h+1's header must carry the
// manifest's root as StateRoot (the state after block h) and block h's hash as its parent, and
// block h's certificate must verify against the set of h. Chunks are checked against the
// manifest's hashes as they come, and the root of all the entries against the certified root
// before the store is marked as a state at h: nothing unverified is ever written. Then the
// restored state's own validator set for h+1 must certify block h+1 as well. The proofs of the
// changes are kept (BlockStore.SaveValidatorChanges), so that this node can serve them when
// others join from it.

var (
	// ErrStateSync is a state sync that could not complete; the message says why and what to do.
	ErrStateSync = errors.New("node: state sync failed")
	// errBadOffer is an offer that does not verify: its peer is at fault.
	errBadOffer = errors.New("node: invalid snapshot offer")
)

// stateSyncPenalty is the gossip score a peer loses for a bad offer or chunk: a few of them
// disconnect it (p2p.Host.Penalize).
const stateSyncPenalty = 150

// verifiedOffer is an offer whose manifest is tied to a certified header.
type verifiedOffer struct {
	m        *state.SnapshotManifest
	hash     state.Hash // the manifest's
	block    []byte
	cert     *consensus.Certificate
	timeMs   int64 // block h's time
	next     []byte
	nextCert *consensus.Certificate
	results  []StoredResult // block h's, certified by block h+1's receipts root
	// changes are the verified proofs of the validator set changes up to block h+1, by the
	// height each takes effect at: kept, so that this node can serve them in turn.
	changes map[uint64][]byte
	epochs  int // validator sets followed from genesis
}

// maxStateSyncChanges bounds the validator set changes an offer may count.
const maxStateSyncChanges = 1 << 16

// errChangeUnavailable is a validator set change the offering peer did not serve: not proven
// false, so the peer is not blamed (its offer may have moved on to a newer snapshot).
var errChangeUnavailable = errors.New("node: validator set change not served")

// verifyOffer decodes an offer and checks it (see the trust note above): it follows the
// validator set changes from genesis, each fetched by change (i: 0 the first of those the offer
// at height counts), as the light client does, and checks the offer's blocks against the set of
// their heights.
func verifyOffer(g *light.Genesis, raw []byte, change func(height uint64, i uint32) ([]byte, error)) (*verifiedOffer, error) {
	chainID := g.ChainID
	var o snapshotOffer
	if err := state.Unmarshal(raw, &o); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadOffer, err)
	}
	m, err := state.DecodeSnapshotManifest(o.Manifest, chainID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadOffer, err)
	}
	if m.Height == 0 {
		return nil, fmt.Errorf("%w: a snapshot at height 0", errBadOffer)
	}
	if o.Changes > maxStateSyncChanges {
		return nil, fmt.Errorf("%w: %d validator set changes, at most %d", errBadOffer, o.Changes, maxStateSyncChanges)
	}
	var sched light.EntryProof
	if err := state.Unmarshal(o.Schedule, &sched); err != nil {
		return nil, fmt.Errorf("%w: validator schedule proof: %w", errBadOffer, err)
	}
	chain, err := light.Follow(g, nil)
	if err != nil {
		return nil, err // our own genesis
	}
	changes := make(map[uint64][]byte, o.Changes)
	for i := range o.Changes {
		rc, err := change(m.Height, i)
		if err != nil {
			return nil, fmt.Errorf("%w: change %d of %d: %w", errChangeUnavailable, i+1, o.Changes, err)
		}
		c, err := decodeValidatorChange(rc)
		if err != nil {
			return nil, fmt.Errorf("%w: validator change %d: %w", errBadOffer, i+1, err)
		}
		if err := chain.Add(c); err != nil {
			return nil, fmt.Errorf("%w: %w", errBadOffer, err)
		}
		// Kept in its canonical encoding, whatever spelling the peer used.
		if changes[chain.Last()], err = encodeValidatorChange(c); err != nil {
			return nil, err
		}
	}
	next, nextCert, err := verifySynced(chainID, chain.SetAt(m.Height+1), m.Height+1, state.Hash(consensus.DigestOf(o.Block)),
		&p2p.SyncedBlock{Height: m.Height + 1, Block: o.Next, Certificate: o.NextCert})
	if err != nil {
		// Also what a chain of changes with the last ones left out gives.
		return nil, fmt.Errorf("%w: block %d (the snapshot's certified header), against the validator set of height %d "+
			"that the %d changes served lead to: %w", errBadOffer, m.Height+1, chain.Last(), o.Changes, err)
	}
	// The changes followed must be all of those up to block h+1, as its state shows: otherwise
	// its certificate was checked against a set that may no longer decide it.
	anchor := &light.Header{Height: m.Height + 1, StateRoot: next.Header.StateRoot, ReceiptsRoot: next.Header.ReceiptsRoot}
	if err := chain.CheckSchedule(anchor, &sched); err != nil {
		return nil, fmt.Errorf("%w: %d validator set changes served: %w", errBadOffer, o.Changes, err)
	}
	if next.Header.StateRoot != m.Root {
		return nil, fmt.Errorf("%w: block %d certifies state root %s, the manifest says %s", errBadOffer,
			m.Height+1, next.Header.StateRoot, m.Root)
	}
	// Block h itself: its hash is certified by block h+1 (checked above); its certificate is
	// kept with it. Its parent is not held, so its own parent hash is taken as it is.
	bh, err := DecodeBlock(o.Block)
	if err != nil {
		return nil, fmt.Errorf("%w: block %d: %w", errBadOffer, m.Height, err)
	}
	b, cert, err := verifySynced(chainID, chain.SetAt(m.Height), m.Height, bh.Header.PrevHash,
		&p2p.SyncedBlock{Height: m.Height, Block: o.Block, Certificate: o.Cert})
	if err != nil {
		return nil, fmt.Errorf("%w: block %d: %w", errBadOffer, m.Height, err)
	}
	// Block h's results: one per transaction, by hash, and their receipts root the one block
	// h+1 certifies.
	var results []StoredResult
	if err := state.Unmarshal(o.Results, &results); err != nil {
		return nil, fmt.Errorf("%w: results of block %d: %w", errBadOffer, m.Height, err)
	}
	if len(results) != len(b.Txs) {
		return nil, fmt.Errorf("%w: %d results for the %d transactions of block %d", errBadOffer, len(results), len(b.Txs), m.Height)
	}
	leaves := make([][]byte, len(results))
	for i, r := range results {
		if r.Hash != state.HashTx(b.Txs[i]) {
			return nil, fmt.Errorf("%w: result %d of block %d is for another transaction", errBadOffer, i, m.Height)
		}
		leaves[i] = merkle.ReceiptLeaf(r.Hash, r.Error == "")
	}
	if got := merkle.ReceiptsRoot(leaves); got != next.Header.ReceiptsRoot {
		return nil, fmt.Errorf("%w: block %d's results make receipts root %s, block %d certifies %s", errBadOffer,
			m.Height, got, m.Height+1, next.Header.ReceiptsRoot)
	}
	h, err := m.Hash()
	if err != nil {
		return nil, err
	}
	return &verifiedOffer{m: m, hash: h, block: o.Block, cert: cert, timeMs: b.Header.Time,
		next: o.Next, nextCert: nextCert, results: results, changes: changes, epochs: chain.Epochs()}, nil
}

// lightGenesis is the genesis as the light client reads it: the same file, so the same sets.
func lightGenesis(gen *Genesis) (*light.Genesis, error) {
	b, err := json.Marshal(gen)
	if err != nil {
		return nil, err
	}
	return light.ParseGenesis(b)
}

// stateSyncMetrics describe a state sync in progress; served by the state-sync listener, and
// then by the node.
type stateSyncMetrics struct {
	chunks, chunksTotal prometheus.Gauge
	bytes               prometheus.Counter
	failures            *prometheus.CounterVec
	height              prometheus.Gauge
}

func newStateSyncMetrics(reg prometheus.Registerer) *stateSyncMetrics {
	m := &stateSyncMetrics{
		chunks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_statesync_chunks_applied",
			Help: "Snapshot chunks verified and written by the state sync in progress."}),
		chunksTotal: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_statesync_chunks_total",
			Help: "Chunks of the snapshot being restored."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_statesync_bytes_total",
			Help: "Bytes of snapshot offers and chunks received by state sync."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_statesync_failures_total",
			Help: "State sync offers and chunks refused or not served, by reason (bad_offer, bad_chunk, unavailable, bad_root)."},
			[]string{"reason"}),
		height: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_statesync_height",
			Help: "Height of the snapshot being restored, or restored (0: none)."}),
	}
	for _, c := range []prometheus.Collector{m.chunks, m.chunksTotal, m.bytes, m.failures, m.height} {
		_ = reg.Register(c)
	}
	return m
}

// StateSyncResult is what a completed state sync did.
type StateSyncResult struct {
	Height  uint64
	Root    state.Hash
	Chunks  int
	Entries uint64
	Bytes   uint64 // received: offers and chunks, refused ones included
	Took    time.Duration
}

// StateSync joins a node by state sync when its home holds no blocks (a new or wiped home); a
// home with blocks is left as it is (nil, nil). It runs before New: it brings up p2p alone,
// restores the newest verified snapshot, stores its block as the block store's base, and stops.
// While it runs, the API address answers /readyz 503 and /healthz 200 and serves /metrics.
func StateSync(ctx context.Context, home string, logger *slog.Logger) (*StateSyncResult, error) {
	if logger == nil {
		logger = slog.Default()
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		return nil, err
	}
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		return nil, err
	}
	nodeKey, err := LoadKeyFile(filepath.Join(home, NodeKeyFile))
	if err != nil {
		return nil, err
	}
	if kv.Backend(cfg.Storage.Backend) == kv.MemDB {
		return nil, fmt.Errorf("%w: storage.backend memdb keeps nothing between state sync and start; use pebbledb", ErrStateSync)
	}
	dir := filepath.Join(home, DataDir)
	opts := kv.Options{Logger: logger}
	blockDB, err := kv.OpenWith(kv.Backend(cfg.Storage.Backend), dir, "blocks", opts)
	if err != nil {
		return nil, fmt.Errorf("node: opening block store: %w", err)
	}
	defer blockDB.Close()
	stateDB, err := kv.OpenWith(kv.Backend(cfg.Storage.Backend), dir, "state", opts)
	if err != nil {
		return nil, fmt.Errorf("node: opening state store: %w", err)
	}
	defer stateDB.Close()
	bs, err := OpenBlockStore(blockDB)
	if err != nil {
		return nil, err
	}
	if h := bs.Height(); h > 0 {
		logger.Info("state sync not needed: this home holds blocks; the node continues from them", "height", h)
		return nil, nil
	}
	// No blocks: whatever the state store holds (genesis, or a restore cut short) is replaced.
	if err := state.ClearStore(stateDB); err != nil {
		return nil, err
	}

	reg := prometheus.NewRegistry()
	sm := newStateSyncMetrics(reg)
	stopHTTP, err := serveStateSyncStatus(cfg.API.Listen, reg, logger)
	if err != nil {
		return nil, err
	}
	defer stopHTTP()

	peerID, err := p2p.PeerIDFromKey(nodeKey)
	if err != nil {
		return nil, err
	}
	var validators, allowed []string
	for _, v := range gen.Validators {
		if v.PeerID != "" {
			validators = append(validators, v.PeerID)
		}
	}
	if cfg.P2P.Permissioned {
		allowed = validators
	}
	bootstrap := slices.Clone(cfg.P2P.Bootstrap)
	for _, a := range gen.BootstrapPeers(peerID) {
		if !slices.Contains(bootstrap, a) {
			bootstrap = append(bootstrap, a)
		}
	}
	ignore := func(string, []byte) (p2p.Verdict, any) { return p2p.Ignore, nil }
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	host, err := p2p.New(hctx, p2p.Config{
		Key: nodeKey, Listen: cfg.P2P.Listen, Announce: cfg.P2P.Announce, Bootstrap: bootstrap,
		AllowedPeers: allowed, Observers: cfg.P2P.Observers, Validators: validators, MDNS: cfg.P2P.MDNS,
		AddrBook: filepath.Join(dir, PeerBookFile), ChainID: gen.ChainID,
		MaxMessageBytes: MaxBlockBytes + 64<<10, ValidateTxs: ignore, ValidateConsensus: ignore,
		Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("node: p2p: %w", err)
	}
	defer host.Close()

	lg, err := lightGenesis(gen)
	if err != nil {
		return nil, err
	}
	ss := &stateSyncer{host: host, chainID: gen.ChainID, genesis: lg, db: stateDB,
		log: logger, metrics: sm, discovery: time.Duration(cfg.StateSync.DiscoveryMillis) * time.Millisecond,
		bad: map[string]bool{}}
	logger.Info("state sync: asking peers for their latest snapshot", "peer_id", peerID)
	res, offer, err := ss.run(ctx)
	if err != nil {
		return nil, err
	}
	// The change proofs first: a home with no blocks is state-synced again from scratch.
	if err := bs.SaveValidatorChanges(offer.changes); err != nil {
		return nil, err
	}
	if err := bs.SetBase(offer.m.Height, offer.block, offer.cert, offer.results); err != nil {
		return nil, err
	}
	logger.Info("state sync done: the state is verified at the snapshot's height; block sync fetches the rest",
		"height", res.Height, "root", res.Root, "entries", res.Entries, "chunks", res.Chunks,
		"bytes", res.Bytes, "took", res.Took.Round(time.Millisecond))
	return res, nil
}

// serveStateSyncStatus answers on the API address while state sync runs, so that probes and
// operators see what the node does.
func serveStateSyncStatus(addr string, reg *prometheus.Registry, log *slog.Logger) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: api listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, api.ReadyResponse{Reasons: []string{"state sync in progress"}})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.HealthResponse{Status: "ok"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("state sync status listener", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// snapshotNet is what state sync needs of p2p (p2p.Host; a fake in tests).
type snapshotNet interface {
	ConnectedPeers() []string
	SnapshotOffer(ctx context.Context, p string) ([]byte, error)
	SnapshotChunk(ctx context.Context, p string, height uint64, i uint32) ([]byte, error)
	SnapshotValidatorChange(ctx context.Context, p string, height uint64, i uint32) ([]byte, error)
	Penalize(p string, amount float64) error
}

// stateSyncer runs one state sync: offers, then chunks.
type stateSyncer struct {
	host      snapshotNet
	chainID   string
	genesis   *light.Genesis // what validator sets are followed from
	db        kv.Store
	log       *slog.Logger
	metrics   *stateSyncMetrics
	discovery time.Duration
	received  uint64

	mu  sync.Mutex
	bad map[string]bool // peers that served a bad offer or chunk
}

func (s *stateSyncer) markBad(p, reason string, err error) {
	s.mu.Lock()
	s.bad[p] = true
	s.mu.Unlock()
	s.metrics.failures.WithLabelValues(reason).Inc()
	s.log.Warn("state sync: peer served invalid data; it is penalized and not asked again", "peer", p, "reason", reason, "err", err)
	_ = s.host.Penalize(p, stateSyncPenalty)
}

func (s *stateSyncer) isBad(p string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad[p]
}

func (s *stateSyncer) addBytes(n int) {
	s.mu.Lock()
	s.received += uint64(n)
	s.mu.Unlock()
	s.metrics.bytes.Add(float64(n))
}

// candidate is a verified offer and the peers offering it.
type candidate struct {
	offer *verifiedOffer
	peers []string
}

func (s *stateSyncer) run(ctx context.Context) (*StateSyncResult, *verifiedOffer, error) {
	start := time.Now()
	tried := map[state.Hash]bool{}
	lastWarn := time.Now()
	for {
		// Give discovery and dialing time to find peers before choosing; then ask again every
		// few seconds until a verified offer comes.
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(s.discovery):
		}
		cands := s.offers(ctx)
		var pick *candidate
		for _, c := range cands {
			if !tried[c.offer.hash] {
				pick = c
				break
			}
		}
		if pick == nil {
			if time.Since(lastWarn) > 30*time.Second || len(cands) > 0 {
				lastWarn = time.Now()
				s.log.Warn("state sync: no peer offers a verifiable snapshot yet; waiting. Check that peers are "+
					"reachable (p2p.bootstrap) and have statesync.snapshot_interval set and a snapshot taken",
					"peers", len(s.host.ConnectedPeers()), "offers_tried", len(tried))
			}
			continue
		}
		tried[pick.offer.hash] = true
		m := pick.offer.m
		s.log.Info("state sync: restoring snapshot", "height", m.Height, "root", m.Root, "chunks", len(m.Chunks),
			"bytes", m.Bytes, "peers", len(pick.peers), "validator_sets_followed", pick.offer.epochs)
		s.metrics.height.Set(float64(m.Height))
		s.metrics.chunksTotal.Set(float64(len(m.Chunks)))
		s.metrics.chunks.Set(0)
		err := s.restore(ctx, pick)
		if err == nil {
			return &StateSyncResult{Height: m.Height, Root: m.Root, Chunks: len(m.Chunks), Entries: m.Entries,
				Bytes: s.received, Took: time.Since(start)}, pick.offer, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		s.log.Warn("state sync: the snapshot could not be restored; trying another", "height", m.Height, "err", err)
		if cerr := state.ClearStore(s.db); cerr != nil {
			return nil, nil, cerr
		}
	}
}

// offers asks every connected peer for its offer and returns the verified ones grouped by
// manifest, highest first (more peers first at one height).
func (s *stateSyncer) offers(ctx context.Context) []*candidate {
	peers := s.host.ConnectedPeers()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		byMan = map[state.Hash]*candidate{}
	)
	for _, p := range peers {
		if s.isBad(p) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw, err := s.host.SnapshotOffer(ctx, p)
			s.addBytes(len(raw))
			if err != nil {
				if errors.Is(err, p2p.ErrSnapshotResponse) {
					s.markBad(p, "bad_offer", err)
				} else if !errors.Is(err, p2p.ErrNoSnapshot) {
					s.metrics.failures.WithLabelValues("unavailable").Inc()
				}
				s.log.Debug("state sync: no offer", "peer", p, "err", err)
				return
			}
			o, err := verifyOffer(s.genesis, raw, func(height uint64, i uint32) ([]byte, error) {
				b, err := s.host.SnapshotValidatorChange(ctx, p, height, i)
				s.addBytes(len(b))
				return b, err
			})
			switch {
			case errors.Is(err, p2p.ErrSnapshotResponse): // a change over the limits
				s.markBad(p, "bad_offer", err)
				return
			case errors.Is(err, errChangeUnavailable):
				s.metrics.failures.WithLabelValues("unavailable").Inc()
				s.log.Info("state sync: a peer did not serve a validator set change its offer counts; asking again later", "peer", p, "err", err)
				return
			case err != nil:
				s.markBad(p, "bad_offer", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			c := byMan[o.hash]
			if c == nil {
				c = &candidate{offer: o}
				byMan[o.hash] = c
			}
			c.peers = append(c.peers, p)
		}()
	}
	wg.Wait()
	out := make([]*candidate, 0, len(byMan))
	for _, c := range byMan {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].offer.m.Height != out[j].offer.m.Height {
			return out[i].offer.m.Height > out[j].offer.m.Height
		}
		return len(out[i].peers) > len(out[j].peers)
	})
	return out
}

// restore fetches the chunks of c from its peers in parallel and adds them in order.
func (s *stateSyncer) restore(ctx context.Context, c *candidate) error {
	m := c.offer.m
	r, err := state.NewRestorer(s.db, m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	workers := min(len(m.Chunks), max(2, 2*len(c.peers)), 8)
	jobs := make(chan int, len(m.Chunks))
	for i := range m.Chunks {
		jobs <- i
	}
	close(jobs)
	type got struct {
		i     int
		chunk []byte
		err   error
	}
	results := make(chan got, workers)
	// window bounds the chunks fetched ahead of the next one to add, so memory stays bounded.
	window := make(chan struct{}, 2*workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				// A slot is taken before a job, so the chunk due next always has one.
				select {
				case window <- struct{}{}:
				case <-ctx.Done():
					return
				}
				i, ok := <-jobs
				if !ok {
					<-window
					return
				}
				chunk, err := s.fetchChunk(ctx, c, i, w)
				select {
				case results <- got{i, chunk, err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	pending := map[int][]byte{}
	for r.Next() < len(m.Chunks) {
		var g got
		select {
		case g = <-results:
		case <-ctx.Done():
			return ctx.Err()
		}
		if g.err != nil {
			return g.err
		}
		pending[g.i] = g.chunk
		for {
			chunk, ok := pending[r.Next()]
			if !ok {
				break
			}
			delete(pending, r.Next())
			if err := r.Add(chunk); err != nil {
				return err // verified by hash already: a store failure or a lying manifest
			}
			<-window
			s.metrics.chunks.Set(float64(r.Next()))
			if n := r.Next(); n%64 == 0 || n == len(m.Chunks) {
				s.log.Info("state sync: chunks applied", "done", n, "of", len(m.Chunks))
			}
		}
	}
	txResults := make([]state.TxResult, len(c.offer.results))
	for i, sr := range c.offer.results {
		txResults[i].Hash = sr.Hash
		if sr.Error != "" {
			txResults[i].Err = errors.New(sr.Error)
		}
	}
	if err := r.Finish(c.offer.timeMs, txResults); err != nil {
		if errors.Is(err, state.ErrSnapshotRoot) {
			// Every chunk matched the manifest, and the manifest's root is certified: the
			// manifest's chunk list is a lie. Everyone who offered it is at fault.
			for _, p := range c.peers {
				s.markBad(p, "bad_root", err)
			}
		}
		return err
	}
	// The restored state's own schedule must certify the next block too.
	st, err := state.Open(s.db, s.chainID)
	if err != nil {
		return err
	}
	sched, err := loadSchedule(st)
	if err != nil {
		return err
	}
	if err := consensus.VerifyCertificate(s.chainID, sched.at(m.Height+1).Set, c.offer.nextCert); err != nil {
		for _, p := range c.peers {
			s.markBad(p, "bad_root", err)
		}
		return fmt.Errorf("%w: the restored state's validator set does not certify block %d: %w", ErrStateSync, m.Height+1, err)
	}
	return nil
}

// fetchChunk gets chunk i from the candidate's peers, starting at a different one per worker,
// until one serves bytes that match the manifest. A peer that serves a bad chunk is penalized and
// not asked again.
func (s *stateSyncer) fetchChunk(ctx context.Context, c *candidate, i, worker int) ([]byte, error) {
	for round := 0; ; round++ {
		asked := 0
		for k := range c.peers {
			p := c.peers[(worker+i+k)%len(c.peers)]
			if s.isBad(p) {
				continue
			}
			asked++
			chunk, err := s.host.SnapshotChunk(ctx, p, c.offer.m.Height, uint32(i))
			s.addBytes(len(chunk))
			if err == nil {
				err = state.VerifySnapshotChunk(c.offer.m, i, chunk)
				if err != nil {
					s.markBad(p, "bad_chunk", err)
					continue
				}
				return chunk, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, p2p.ErrSnapshotResponse) {
				s.markBad(p, "bad_chunk", err)
				continue
			}
			s.metrics.failures.WithLabelValues("unavailable").Inc()
			s.log.Debug("state sync: chunk not served", "peer", p, "chunk", i, "err", err)
		}
		if asked == 0 {
			return nil, fmt.Errorf("%w: no peer left that serves snapshot %d honestly", ErrStateSync, c.offer.m.Height)
		}
		if round >= 5 {
			return nil, fmt.Errorf("%w: chunk %d of snapshot %d: no peer served it after %d rounds", ErrStateSync, i, c.offer.m.Height, round+1)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(round+1) * 500 * time.Millisecond):
		}
	}
}
