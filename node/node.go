// Package node wires Guild together: it owns the consensus core from one event loop, executes
// committed blocks against the state, keeps the block store and the mempool, moves messages over
// p2p, and serves the HTTP API.
package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// Node is one organization's running node. Protocol state (the consensus core, the chain tip) is
// touched only by the loop goroutine; everything else reaches it over channels or reads stores that
// are safe for concurrent readers.
type Node struct {
	cfg     Config
	home    string
	gen     *Genesis
	log     *slog.Logger
	chainID string
	valKey  ed25519.PrivateKey // this node's consensus key, whether or not it is in the current set
	valPub  ed25519.PublicKey
	// sched is the validator schedule read from state after each block (see valset.go).
	sched atomic.Pointer[schedule]
	// Owned by the loop: the epoch and parameters the running core was built with.
	coreEpoch epoch
	self      int // validator index at the core's height, -1 when observing
	params    params
	coreStale bool     // the next height needs a core with another validator set or timeout
	allowed   []string // the member peer IDs the p2p gater was last given (sorted)
	nodeKey   ed25519.PrivateKey
	peerID    string

	// blockRun and stateRun are the two stores as the block store and the state see them: block
	// sync writes a run of blocks to each in one batch (syncrun.go).
	blockRun, stateRun *runStore
	runStart           uint64 // the block store's height when the open run began
	// syncDecoded is the block being applied by block sync, as the syncer decoded and checked it
	// (DecodeBlock) off the loop: checkHeader takes it rather than decode the same bytes again.
	// Loop only; nil outside applySyncedWithin.
	syncDecoded *syncedBlock

	blockDB, stateDB kv.Store
	// engineStatsFn, when set (tests), stands in for the stores' own engine stats.
	engineStatsFn func() map[string]kv.EngineStats
	wal           *WAL                // validators only
	restored      []consensus.Message // read from the WAL at start, for the core
	blocks        *BlockStore
	st            *state.State
	pool          *Mempool
	pending       *pendingLog // transactions accepted from the API, until they leave the mempool
	evidence      *EvidencePool
	sigs          *sigCache
	consensusSigs *sigMemo  // consensus signatures the topic validator verified, for the core
	verifier      *verifier // every transaction signature from the API and gossip: verifier.go
	recent        *txCache  // recent transactions outside the mempool, by hash: txcache.go
	fetcher       txFetcher // tx fetch for proposals by reference (the p2p host): byref.go
	rejected      *reasonCache
	host          *p2p.Host
	core          *consensus.Core
	metrics       *metrics
	commits       feed
	// offences are the invalid consensus messages seen per validator since each was last logged
	// (flood.go); owned by the loop.
	offences map[string]*offenceRecord
	// farViews limits each author's view changes beyond the admission window (flood.go).
	farViews authorBuckets

	// Chain tip, owned by the loop.
	lastHash   state.Hash
	lastTime   int64
	lastHeader Header // the tip's header, from which the next height's leader schedule follows
	// upgrades is the protocol upgrade schedule as of the tip (upgrade.go); warnedUpgrade names
	// the pending upgrade this binary cannot follow that the log has warned about. Loop only.
	upgrades      []state.Upgrade
	warnedUpgrade string
	// activatedUpgrade names the last upgrade whose activation this node logged (noteActivation).
	activatedUpgrade string
	// turn is the leader schedule of the next height, computed once per height (leadersAt);
	// skippedNow is who it passes over, for the API.
	turn       leaderTurn
	skippedNow atomic.Pointer[[]uint32]
	// peersDown holds the peers whose last connection closed and that have not connected again
	// (owned by the loop): told to every new core (peerChanged).
	peersDown map[string]bool
	// viewChangesSeen is the core's view-change count at the last Ready, to log each one.
	viewChangesSeen uint64
	lastCommit      time.Time    // when the last block was committed, for guild_height_seconds
	phases          heightPhases // guild_height_phase_seconds; owned by the loop
	// executed holds the candidate blocks executed on the tip (by CheckProposal or maybePropose),
	// so that the one decided is committed without being executed again.
	executed executedBlocks
	// refs tracks the proposals by reference being rebuilt, and the last ones rebuilt (byref.go).
	refs       refState
	resolvedCh chan resolvedRef
	// authorDups are authors' own copies of votes that pubsub dropped as duplicates
	// (authordups.go), for the loop to note their authors heard.
	authorDups chan p2p.Message
	// refusals are the proposals CheckProposal refused for a failing transaction since the loop
	// last looked; early the signed proposals buffered by the core for a height it had not
	// entered. Together they name the leader of a refused proposal (offences.go).
	refusals     []refusal
	early        []consensus.Message
	badProposals *offenceLog // GET /v1/offences

	snapshot atomic.Pointer[consensus.Status]
	health   nodeHealth // stalls, store faults, disk space: health.go
	// served is the last height whose block, results and tx index are all written: what the API
	// shows, so a reader never sees a block without its results.
	served   atomic.Uint64
	gate     admissionGate // the API's overload check: overload.go
	admitCh  chan *admitUnit
	gossipCh chan [][]byte // admitted transactions, a batch at a time, for gossipBatcher
	sendCh   chan []byte
	syncCh   chan *syncApply // verified blocks from block sync, for the loop to apply
	// syncSlice bounds a turn of the loop on synced blocks (syncApplySlice; tests shorten it).
	syncSlice time.Duration

	// unrecorded is the committed block whose results and indexes the loop writes once it has
	// handled the next height's start (recordResults); settlingTxs are its transactions, which
	// the API reads as pending meanwhile.
	unrecorded  *unrecordedBlock
	settlingTxs atomic.Pointer[settlingTxs]

	// checkpoints carries backup requests to the loop, which takes them between blocks.
	checkpoints chan *checkpointReq
	syncer      *syncer
	// private keeps and moves private payloads' ciphertexts (private.go).
	private *privateData
	// snaps takes state snapshots and serves them to joining peers (snapshot.go).
	snaps *snapshotter

	// byz is a misbehaving validator's hooks, set only in a build with -tags byzantine (see
	// byzantine.go); nil otherwise, and then every hook is skipped.
	byz *byzantine

	up       chan struct{} // closed once p2p and the API are listening
	stopping chan struct{} // closed when Run begins to shut down
	apiLn    net.Listener
	apiSrv   *http.Server
	adminLn  net.Listener // nil unless admin.listen is set
	adminSrv *http.Server
	wg       sync.WaitGroup
}

// New opens a node's home directory: config, genesis, keys and stores. Run starts it.
func New(home string, logger *slog.Logger) (*Node, error) {
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
	valKey, err := LoadKeyFile(filepath.Join(home, ValidatorKeyFile))
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	n := &Node{
		cfg: cfg, home: home, gen: gen, log: logger, chainID: gen.ChainID,
		self: -1, nodeKey: nodeKey, valKey: valKey,
		pool:         NewMempool(cfg.Mempool.Size),
		evidence:     NewEvidencePool(),
		sigs:         newSigCache(1 << 20),
		recent:       newTxCache(1 << 15),
		resolvedCh:   make(chan resolvedRef, 16),
		authorDups:   make(chan p2p.Message, authorDuplicatesBuffer),
		rejected:     newReasonCache(1 << 16),
		badProposals: newOffenceLog(maxOffences, maxOffenceBytes),
		metrics:      newMetrics(),
		farViews:     authorBuckets{rate: farViewChangesPerSec},
		admitCh:      make(chan *admitUnit, admitQueue),
		gossipCh:     make(chan [][]byte, gossipQueue),
		sendCh:       make(chan []byte, 4096),
		syncCh:       make(chan *syncApply),
		syncSlice:    syncApplySlice,
		checkpoints:  make(chan *checkpointReq),
		up:           make(chan struct{}),
		stopping:     make(chan struct{}),
	}
	n.pool.superseded = n.rejected.put
	n.consensusSigs = newSigMemo(sigMemoSize)
	n.sigs.pool = n.pool // execution takes the decoded transactions the mempool holds
	n.phases.hist = n.metrics.heightPhase
	n.verifier = newVerifier(n.chainID, n.sigs, n.metrics, n.stopping)
	if n.peerID, err = p2p.PeerIDFromKey(nodeKey); err != nil {
		return nil, err
	}
	n.valPub = valKey.Public().(ed25519.PublicKey)
	if err := n.openStores(); err != nil {
		n.closeStores()
		if isStoreFault(err) {
			return nil, fmt.Errorf("%w; %s", err, n.storeAdvice())
		}
		return nil, err
	}
	sched, err := loadSchedule(n.st)
	if err != nil {
		n.closeStores()
		return nil, err
	}
	n.sched.Store(sched)
	if n.params, err = n.loadParams(); err != nil {
		n.closeStores()
		return nil, err
	}
	n.gate.setParams(cfg.Mempool, n.params)
	if err := n.upgradeCheck(n.blocks.Height() + 1); err != nil {
		// Refuse to start rather than sign anything at a height this binary cannot execute.
		n.closeStores()
		n.logFatal(err)
		return nil, err
	}
	if n.snaps, err = newSnapshotter(home, cfg.StateSync, n.st, n.blocks, n.log, n.metrics.reg); err != nil {
		n.closeStores()
		return nil, err
	}
	n.snaps.stop, n.snaps.wg = n.stopping, &n.wg
	n.self = n.selfIndex(n.blocks.Height() + 1)
	// Every node keeps a WAL, not only the validators of today: governance may make it one.
	if n.wal, n.restored, err = OpenWAL(filepath.Join(n.home, DataDir, WALFile)); err != nil {
		n.closeStores()
		return nil, walCorruptAt(err, n.blocks.Height())
	}
	logWALRecovery(n.log, n.wal)
	return n, nil
}

func (n *Node) openStores() error {
	dir := filepath.Join(n.home, DataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Checkpoints left by a backup that was interrupted before it packed and removed them.
	if err := os.RemoveAll(filepath.Join(dir, checkpointsDir)); err != nil {
		n.log.Warn("removing stale backup checkpoints", "err", err)
	}
	backend := kv.Backend(n.cfg.Storage.Backend)
	opts := kv.Options{Logger: n.log} // pebble's own errors go to the node's log
	var err error
	if n.blockDB, err = kv.OpenWith(backend, dir, "blocks", opts); err != nil {
		return fmt.Errorf("node: opening block store: %w", err)
	}
	if n.stateDB, err = kv.OpenWith(backend, dir, "state", opts); err != nil {
		return fmt.Errorf("node: opening state store: %w", err)
	}
	n.blockRun, n.stateRun = newRunStore(n.blockDB), newRunStore(n.stateDB)
	if n.blocks, err = OpenBlockStore(n.blockRun); err != nil {
		return err
	}
	n.pending = newPendingLog(n.blockDB) // its own keys, written off the loop: never in a run
	if n.st, err = state.Open(n.stateRun, n.chainID); err != nil {
		return fmt.Errorf("node: opening state: %w", err)
	}
	n.st.DeferSync(stateSyncEvery)
	if n.st.Height() == 0 && n.st.Root() == (state.Hash{}) {
		if err := n.st.InitGenesis(n.gen.StateGenesis()); err != nil {
			return fmt.Errorf("node: applying genesis: %w", err)
		}
	}
	if err := n.openPrivate(); err != nil {
		return err
	}
	return n.recover()
}

// stateSyncEvery is the state's DeferSync period. A block is stored, durably, before it is
// applied, so the state need not be durable at every height: a crash that loses its last blocks
// leaves them in the block store, and recover re-executes them. That takes one fsync off every
// height's commit (the block store's remains, and with it the previous block's results). It must
// stay below minKeepBlocks, so that a pruning node still holds every block a crash can make it
// re-execute (TestStateSyncEveryBelowKeptBlocks).
const stateSyncEvery = 32

// recover re-executes blocks that were stored but not applied when the node last stopped (the block
// store is written first), and loads the chain tip.
func (n *Node) recover() error {
	if n.st.Height() > n.blocks.Height() {
		return fmt.Errorf("node: state is at height %d but the block store only at %d: the data "+
			"directory is inconsistent; restore it or wipe %s and resync", n.st.Height(), n.blocks.Height(),
			filepath.Join(n.home, DataDir))
	}
	if err := n.recoverResults(); err != nil {
		return err
	}
	if err := n.checkIndexes(); err != nil {
		return err
	}
	for h := n.st.Height() + 1; h <= n.blocks.Height(); h++ {
		if err := n.upgradeCheck(h); err != nil {
			return err // a stored block this binary cannot execute (it was stored by a newer one)
		}
		value, _, err := n.blocks.Block(h)
		if err != nil {
			return err
		}
		if err := n.execute(h, value, nil); err != nil {
			return err
		}
		n.log.Info("re-executed stored block", "height", h)
	}
	n.lastTime = n.gen.GenesisTime.UnixMilli()
	n.served.Store(n.st.Height())
	if h := n.blocks.Height(); h > 0 {
		value, _, err := n.blocks.Block(h)
		if err != nil {
			return err
		}
		b, err := DecodeBlock(value)
		if err != nil {
			return fmt.Errorf("node: stored block %d: %w", h, err)
		}
		n.lastHash = state.Hash(consensus.DigestOf(value))
		n.lastTime = b.Header.Time
		n.lastHeader = b.Header
	}
	return nil
}

// recoverResults writes the results and tx index of the last applied block if a crash came
// between applying it and recording them; the state keeps that block's results for this.
func (n *Node) recoverResults() error {
	h := n.st.Height()
	if h == 0 || h == n.blocks.Base() {
		return nil // the base block of a state-synced node was executed elsewhere
	}
	if stored, err := n.blocks.Results(h); err != nil || stored != nil {
		return err
	}
	rh, hashes, errs, err := n.st.LastResults()
	if err != nil {
		return err
	}
	if rh != h {
		return fmt.Errorf("node: block %d has no recorded results and the state kept those of %d", h, rh)
	}
	results := make([]StoredResult, len(hashes))
	for i := range hashes {
		results[i] = StoredResult{Hash: hashes[i], Error: errs[i]}
	}
	value, _, err := n.blocks.Block(h)
	if err != nil {
		return err
	}
	var blk blockTxsOnly
	if err := skimMode.Unmarshal(value, &blk); err != nil {
		return fmt.Errorf("%w: block %d: %w", ErrStoreCorrupt, h, err)
	}
	touched, err := blockTouches(n.st, h, blk.Txs, nil, results)
	if err != nil {
		return err
	}
	n.log.Info("recorded the results of the last block after a crash", "height", h)
	return n.blocks.SaveResults(h, results, touched)
}

func (n *Node) closeStores() {
	if n.wal != nil {
		if err := n.wal.Close(); err != nil {
			n.log.Warn("closing consensus WAL", "err", err)
		}
	}
	n.closePrivate()
	for _, db := range []kv.Store{n.blockDB, n.stateDB} {
		if db != nil {
			if err := db.Close(); err != nil {
				n.log.Warn("closing store", "err", err)
			}
		}
	}
}

// Started is closed once the node listens (APIAddr and PeerAddrs are then valid).
func (n *Node) Started() <-chan struct{} { return n.up }

// PeerAddrs are the node's full p2p multiaddrs, ending in /p2p/<peer id>.
func (n *Node) PeerAddrs() []string { return n.host.Addrs() }

// Run starts p2p, the API and the loop, and blocks until ctx ends; then it shuts down cleanly.
func (n *Node) Run(ctx context.Context) error {
	defer n.closeStores()
	if err := n.startCore(n.restored); err != nil {
		if len(n.restored) > 0 {
			return fmt.Errorf("node: the consensus WAL (%s) does not fit the block store at height %d: %w; "+
				"if the chain data was wiped, this validator signed heights it no longer has and must "+
				"not sign them again: wait until the chain is past them, then move the WAL aside",
				filepath.Join(n.home, DataDir, WALFile), n.blocks.Height(), err)
		}
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := n.startP2P(ctx); err != nil {
		return err
	}
	defer n.host.Close()
	n.startHealth(ctx)
	if err := n.startAPI(ctx); err != nil {
		return err
	}
	n.startAdmission(ctx)
	n.syncer = n.newSyncer(n.host)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.syncer.run(ctx)
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.runPrivate(ctx)
	}()

	if n.byz != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.byz.run(ctx, n)
		}()
	}
	close(n.up)
	genHash, _ := n.gen.Hash() // a genesis that was parsed from JSON encodes back to it
	n.log.Info("node started", "chain_id", n.chainID, "genesis_hash", genHash, "moniker", n.cfg.Moniker, "height", n.blocks.Height(),
		"validator", n.self, "restored_from_wal", len(n.restored), "peer_id", n.host.ID(), "api", "http://"+n.apiLn.Addr().String())
	loopErr := n.loop(ctx)
	if loopErr != nil && !errors.Is(loopErr, context.Canceled) {
		n.logFatal(loopErr)
	}
	close(n.stopping)
	cancel()

	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	n.shutdownAPI(shutdownCtx)
	n.wg.Wait()
	if loopErr != nil && !errors.Is(loopErr, context.Canceled) {
		return loopErr
	}
	n.log.Info("node stopped", "height", n.blocks.Height())
	return nil
}

// startCore (re)starts the consensus core at the height after the last stored block: at start,
// with what the WAL restored, and on the loop after block sync moved the chain past the core.
// The last stored blocks go to the core too, so that it can hand them to peers still deciding them.
func (n *Node) startCore(restore []consensus.Message) error {
	var recent []consensus.Committed
	for h := n.blocks.Height(); h >= n.blocks.Earliest() && h+consensus.MaxFutureHeights > n.blocks.Height(); h-- {
		value, cert, err := n.blocks.Block(h)
		if err != nil {
			return err
		}
		recent = append([]consensus.Committed{{Height: h, Value: value, Certificate: *cert}}, recent...)
	}
	// The set and parameters of the height the core decides: on a validator change the loop
	// restarts the core at the first height of the new set, before it signs anything there.
	height := n.blocks.Height() + 1
	ep := *n.sched.Load().at(height)
	self := n.selfIndex(height)
	var key ed25519.PrivateKey
	if self >= 0 {
		key = n.valKey
	}
	core, err := consensus.New(consensus.Config{
		Recent:           recent,
		ChainID:          n.chainID,
		Validators:       ep.Set,
		Key:              key,
		App:              n,
		Height:           height,
		RetransmitTicks:  n.cfg.Consensus.RetransmitTicks,
		ViewTimeoutTicks: max(1, int(n.params.viewTimeout/n.cfg.tick())),
		Restore:          restore,
		Schedule:         n,
		Memo:             n.consensusSigs,
	})
	if err != nil {
		return fmt.Errorf("node: consensus: %w", err)
	}
	if self != n.self {
		n.log.Info("validator role changed", "height", height, "index", self)
	}
	n.core, n.coreEpoch, n.self, n.coreStale = core, ep, self, false
	n.viewChangesSeen = 0
	for p := range n.peersDown {
		n.tellCorePeer(p, false)
	}
	st := n.core.Status()
	n.snapshot.Store(&st)
	return nil
}

func (n *Node) startP2P(ctx context.Context) error {
	var allowed, observers, validators []string
	// Direct gossip peering and the validators' gossip score use the genesis validators, the one
	// list every node has alike: direct peering only works when both sides list each other.
	for _, v := range n.gen.Validators {
		if v.PeerID != "" {
			validators = append(validators, v.PeerID)
		}
	}
	if n.cfg.P2P.Permissioned {
		// Who may connect follows the validator schedule in state, not genesis: after a
		// governance change, a restarted node must admit the validators of today.
		n.allowed = n.sched.Load().peerIDs(n.blocks.Height() + 1)
		allowed, observers = n.allowed, n.cfg.P2P.Observers
		// An empty allowlist means "anyone" to the gater: never let a genesis without peer IDs
		// silently open a permissioned node.
		if len(allowed) == 0 {
			return errors.New("node: p2p.permissioned is on but no validator is bound to a peer_id; " +
				"add the peer IDs (guild node init prints them) or set permissioned = false")
		}
	}
	var err error
	n.host, err = p2p.New(ctx, p2p.Config{
		Key:          n.nodeKey,
		Listen:       n.cfg.P2P.Listen,
		Announce:     n.cfg.P2P.Announce,
		Bootstrap:    n.bootstrapPeers(),
		AllowedPeers: allowed,
		Observers:    observers,
		Validators:   validators,
		MDNS:         n.cfg.P2P.MDNS,
		AddrBook:     filepath.Join(n.home, DataDir, PeerBookFile),
		ChainID:      n.chainID,
		// A proposal carries a whole block: the largest gossip message (consensus.DecodeMessage
		// is given the same bound).
		MaxMessageBytes:   MaxBlockBytes + 64<<10,
		ConsensusRate:     n.consensusRate(),
		ValidateTxs:       n.validateTxBatch,
		ValidateConsensus: n.validateConsensus,
		ConsensusAuthor:   n.consensusAuthor,
		ConsensusStale:    n.consensusStale,
		SyncSource:        n,
		PrivateSource:     n,
		PrivateMaxBytes:   n.cfg.Private.MaxBytes,
		PrivateRate:       p2p.RateLimit{MsgsPerSec: n.cfg.Private.RequestsPerSec},
		SnapshotSource:    n.snaps,
		TxSource:          n,
		FetchTxMaxBytes:   state.MaxTxBytes,
		Logger:            n.log,
	})
	if err != nil {
		return fmt.Errorf("node: p2p: %w", err)
	}
	n.fetcher = n.host
	h := n.host
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "guild_p2p_peers", Help: "Connected p2p peers."},
			func() float64 { return float64(len(h.Peers())) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "guild_p2p_score_disconnects_total",
			Help: "Peers disconnected (and refused for a cool-off) because their gossip score fell below the threshold."},
			func() float64 { return float64(h.ScoreDisconnects()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "guild_process_stalls_total",
			Help: "Times this process was seen not running for a second or more (paused, suspended or starved of CPU); peers' message backlog after one is not charged to their gossip score."},
			func() float64 { return float64(h.LocalFreezes()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "guild_p2p_tx_rate_limited_total",
			Help: "Gossiped transaction batches ignored because their author exceeded the per-peer rate limit."},
			func() float64 { return float64(h.TxRateLimited()) }),
		newRateLimitedCollector(n),
		newTxDropsCollector(h),
		newPrivateStreamCollector(h),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "guild_tx_fetch_refused_total",
			Help: "Transaction fetch requests (proposals by reference) this node refused to serve: over a peer's rate limit, malformed, from a peer not allowed, or with every serving slot taken."},
			func() float64 { return float64(h.FetchRefused()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "guild_p2p_link_resets_total",
			Help: "Connections closed because gossipsub no longer counted a connected peer as subscribed, so nothing was published to it; both sides then reconnect and re-announce."},
			func() float64 { return float64(h.LinkResets()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "guild_p2p_tx_relays_skipped_total",
			Help: "Gossiped transaction batches delivered here without relaying them: their publisher had sent them to every other peer of this node."},
			func() float64 { return float64(h.TxRelaysSkipped()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "guild_p2p_duplicate_messages_total",
			Help: dupHelp, ConstLabels: prometheus.Labels{"topic": "txs"}},
			func() float64 { d, _ := h.DuplicateMessages(); return float64(d) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "guild_p2p_duplicate_messages_total",
			Help: dupHelp, ConstLabels: prometheus.Labels{"topic": "consensus"}},
			func() float64 { _, d := h.DuplicateMessages(); return float64(d) }),
	} {
		if err := n.metrics.reg.Register(c); err != nil {
			n.log.Warn("registering p2p metrics", "err", err)
		}
	}
	return nil
}

const dupHelp = "Copies of gossip messages received after the first, by topic, dropped by message ID: what relaying costs."

// bootstrapPeers are [p2p] bootstrap and the other genesis validators' announce addresses, once each.
func (n *Node) bootstrapPeers() []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range append(slices.Clone(n.cfg.P2P.Bootstrap), n.gen.BootstrapPeers(n.peerID)...) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// nonceOf reads an account's committed nonce; a read error counts as nonce 0, which only makes the
// mempool hold a transaction back, never admit a wrong one into a block.
func (n *Node) nonceOf(a state.Address) uint64 {
	acc, err := n.st.Account(a)
	if err != nil {
		if isStoreFault(err) {
			n.storeFailed("reading the nonce of "+a.String(), err)
		}
		return 0
	}
	return acc.Nonce
}

// feed wakes every waiter once per published event (here: each committed block).
type feed struct {
	mu sync.Mutex
	ch chan struct{}
}

func (f *feed) wait() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch == nil {
		f.ch = make(chan struct{})
	}
	return f.ch
}

func (f *feed) publish() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch != nil {
		close(f.ch)
	}
	f.ch = make(chan struct{})
}

// reasonCache remembers why recently refused transactions were refused, for GET /v1/txs/{hash}.
type reasonCache struct {
	mu        sync.Mutex
	cur, prev map[state.Hash]string
	limit     int
}

func newReasonCache(limit int) *reasonCache {
	return &reasonCache{cur: map[state.Hash]string{}, prev: map[state.Hash]string{}, limit: limit}
}

func (c *reasonCache) put(h state.Hash, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.limit {
		c.prev, c.cur = c.cur, map[state.Hash]string{}
	}
	c.cur[h] = reason
}

func (c *reasonCache) get(h state.Hash) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.cur[h]; ok {
		return r, true
	}
	r, ok := c.prev[h]
	return r, ok
}
