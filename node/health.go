package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// Issue #9, "say when in trouble": a stalled chain, a damaged store or a filling disk must be
// visible to an operator — a WARN or ERROR line that says what to do, a metric, and /readyz.
// nodeHealth is what the node knows about its own well-being. It is written by the loop (a block
// applied, a validator heard from), block sync, the disk monitor and whoever meets a store error,
// and read from any goroutine: every field is atomic or behind its own small lock, and none of it
// is protocol state.
type nodeHealth struct {
	started     time.Time
	lastBlockMs atomic.Int64 // unix ms when this node last applied a block; 0 for none since start
	lastBlockAt atomic.Int64 // that block's header time, unix ms
	heard       atomic.Pointer[heardSet]
	catchingUp  atomic.Bool // block sync is fetching because peers are ahead
	// peersTip is the chain's height as the peers last told block sync (see tipOf), and tipKnown
	// whether any peer has answered since start: until then the node cannot know it is not behind.
	peersTip   atomic.Uint64
	tipKnown   atomic.Bool
	stalled    atomic.Bool
	loopAnswer atomic.Int64 // unix ms when the loop last answered a probe

	// upgradeRequired: the binary does not support the protocol version of the next height, and
	// the node is stopping (upgrade.go).
	upgradeRequired atomic.Bool

	storeErrors atomic.Uint64
	storeFault  atomic.Bool // a store read or write failed since start: not ready until restart
	storeLog    logLimiter

	diskFree  atomic.Int64 // bytes free on the data directory's filesystem; -1 unknown
	diskLevel atomic.Int32 // diskOK, diskLow or diskCritical

	// probes carries requests to the loop for its view of consensus (see probeLoop).
	probes chan chan loopProbe
}

// loopProbe is the loop's answer to a probe: what the core and the node's role look like now.
type loopProbe struct {
	status     consensus.Status
	epoch      epoch
	emptyAfter time.Duration
}

// heardSet is when each validator of one validator set was last heard from: any consensus message
// it authored that reached the loop. Only the loop writes it; a new set replaces it on a change.
type heardSet struct {
	from uint64 // the epoch (validator set) it belongs to
	at   []atomic.Int64
}

// noteHeard records that the author of m was heard from. Called on the loop for each consensus
// message it steps: those passed the signature check against the set of their height.
func (n *Node) noteHeard(m *consensus.Message) {
	if m.Relayed {
		return // passed on by another peer: no sign that its author is up (markRelayed)
	}
	hs := n.heardFor(&n.coreEpoch)
	if n.sched.Load().at(m.Height).From != hs.from || int(m.From) >= len(hs.at) {
		return // another set's index: not the validators the core waits for
	}
	hs.at[m.From].Store(time.Now().UnixMilli())
}

// heardFor returns the heard set of e, starting one (and carrying over what is known of the same
// validators, by name) when the core moved to another set. Loop only.
func (n *Node) heardFor(e *epoch) *heardSet {
	hs := n.health.heard.Load()
	if hs != nil && hs.from == e.From {
		return hs
	}
	next := &heardSet{from: e.From, at: make([]atomic.Int64, len(e.Set.Validators))}
	if hs != nil {
		old := n.sched.Load().at(hs.from)
		for i, name := range e.Names {
			for j, oldName := range old.Names {
				if name == oldName && j < len(hs.at) {
					next.at[i].Store(hs.at[j].Load())
				}
			}
		}
	}
	n.health.heard.Store(next)
	return next
}

// probe answers a probe on the loop.
func (n *Node) probe() loopProbe {
	n.heardFor(&n.coreEpoch)
	return loopProbe{status: n.core.Status(), epoch: n.coreEpoch, emptyAfter: n.params.emptyAfter}
}

// probeLoop asks the loop for a probe and waits up to timeout: false means the loop did not
// answer, which only a loop stuck on something (a disk, a bug) explains.
func (n *Node) probeLoop(ctx context.Context, timeout time.Duration) (loopProbe, bool) {
	reply := make(chan loopProbe, 1) // the loop never waits on a probe that gave up
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case n.health.probes <- reply:
	case <-t.C:
		return loopProbe{}, false
	case <-ctx.Done():
		return loopProbe{}, false
	}
	select {
	case p := <-reply:
		n.health.loopAnswer.Store(time.Now().UnixMilli())
		return p, true
	case <-t.C:
		return loopProbe{}, false
	case <-ctx.Done():
		return loopProbe{}, false
	}
}

// blockApplied records that a block was applied (decided here or fetched by block sync). Loop.
func (h *nodeHealth) blockApplied(headerTimeMs int64) {
	h.lastBlockAt.Store(headerTimeMs)
	h.lastBlockMs.Store(time.Now().UnixMilli())
}

// sinceLastBlock is how long ago the last block was applied, or the node started if none was.
func (h *nodeHealth) sinceLastBlock(now time.Time) time.Duration {
	if ms := h.lastBlockMs.Load(); ms > 0 {
		return now.Sub(time.UnixMilli(ms))
	}
	return now.Sub(h.started)
}

// startHealth starts the stall watchdog and the disk monitor and registers the health metrics.
// Run calls it before the API and the loop start.
func (n *Node) startHealth(ctx context.Context) {
	n.health.started = time.Now()
	n.health.loopAnswer.Store(n.health.started.UnixMilli())
	n.health.diskFree.Store(-1)
	n.health.probes = make(chan chan loopProbe)
	n.registerHealthMetrics()
	disk := newDiskMonitor(filepath.Join(n.home, DataDir), n.cfg.Storage.MinFreeMB, statfsFree, n.log, &n.health)
	disk.check(time.Now()) // at once, so that /readyz and the metric are right from the start
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		disk.run(ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.watchdog(ctx)
	}()
}

// registerHealthMetrics adds the health gauges to the node's registry.
func (n *Node) registerHealthMetrics() {
	h := &n.health
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "guild_stalled",
			Help: "1 while no block has been finalized for longer than consensus.stall_warn_ms."},
			func() float64 { return b2f(h.stalled.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "guild_seconds_since_last_block",
			Help: "Seconds since this node applied a block (since it started, before the first)."},
			func() float64 { return h.sinceLastBlock(time.Now()).Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "guild_catching_up",
			Help: "1 while block sync fetches blocks because peers are ahead."},
			func() float64 { return b2f(h.catchingUp.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "guild_disk_free_bytes",
			Help: "Free bytes on the filesystem of the data directory (-1 when unknown)."},
			func() float64 { return float64(h.diskFree.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "guild_store_errors_total",
			Help: "Store reads and writes that failed (I/O error, damaged data): see the node's log."},
			func() float64 { return float64(h.storeErrors.Load()) }),
		newStorageCollector(n),
		&heardCollector{n: n, desc: prometheus.NewDesc("guild_consensus_last_heard_seconds",
			"Seconds since a consensus message authored by this validator was last received (since start if never).",
			[]string{"validator"}, nil)},
	} {
		if err := n.metrics.reg.Register(c); err != nil {
			n.log.Warn("registering health metrics", "err", err)
		}
	}
}

// heardCollector exports the heard set, named by the validators of the set it belongs to.
type heardCollector struct {
	n    *Node
	desc *prometheus.Desc
}

func (c *heardCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *heardCollector) Collect(ch chan<- prometheus.Metric) {
	hs := c.n.health.heard.Load()
	if hs == nil {
		return
	}
	e := c.n.sched.Load().at(hs.from)
	now := time.Now()
	for i := range hs.at {
		if i >= len(e.Names) {
			break
		}
		ago := now.Sub(c.n.health.started)
		if ms := hs.at[i].Load(); ms > 0 {
			ago = now.Sub(time.UnixMilli(ms))
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, ago.Seconds(), e.Names[i])
	}
}

// ErrStoreCorrupt is stored data that does not decode: the store was damaged under the node.
var ErrStoreCorrupt = errors.New("node: stored data is corrupt")

// isStoreFault reports whether err is the store's fault (an engine failure or damaged data) rather
// than the caller's.
func isStoreFault(err error) bool {
	return errors.Is(err, kv.ErrStorage) || errors.Is(err, ErrStoreCorrupt) || errors.Is(err, state.ErrCorrupt)
}

// storeFaultMessage is the client's answer to a request that met a store fault: the details
// (paths, engine messages) are for the operator, in the log.
const storeFaultMessage = "internal storage error; see the node's log"

// storeFailed records a store fault met while doing what: counted, logged at ERROR with what to
// do (at most every storeLogEvery, with how many were not logged), and the node is not ready
// until it restarts.
func (n *Node) storeFailed(what string, err error) {
	n.health.storeErrors.Add(1)
	n.health.storeFault.Store(true)
	if skipped, ok := n.health.storeLog.allow(time.Now()); ok {
		n.log.Error("store failure: "+what+"; "+n.storeAdvice(), "err", err, "not_logged_since", skipped)
	}
}

// storeAdvice tells the operator what to do about a store fault.
func (n *Node) storeAdvice() string {
	data := filepath.Join(n.home, DataDir)
	return fmt.Sprintf("if the disk is full, free space on it; otherwise the store is damaged: stop the node, "+
		"move %s and %s aside (keep %s, which stops this validator from signing twice) and start the node "+
		"again to resync from peers",
		filepath.Join(data, "blocks.db"), filepath.Join(data, "state.db"), filepath.Join(data, WALFile))
}

// storeLogEvery spaces repeated store-failure log lines: a client asking again for a damaged
// block must not flood the log.
const storeLogEvery = 10 * time.Second

// logLimiter lets a line through at most once per storeLogEvery and counts the ones it held.
type logLimiter struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (l *logLimiter) allow(now time.Time) (skipped int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < storeLogEvery {
		l.skipped++
		return 0, false
	}
	skipped, l.skipped, l.last = l.skipped, 0, now
	return skipped, true
}

// logFatal logs, at ERROR with what to do, the error that stops the loop: a node that cannot
// store or execute a decided block, or write its WAL, has lost durability and must not go on.
func (n *Node) logFatal(err error) {
	var up *UpgradeRequiredError
	switch {
	case errors.As(err, &up):
		n.log.Error("the node stops for a protocol upgrade: "+up.Error(), "upgrade", up.Upgrade.Name,
			"height", up.Upgrade.Height, "version", up.Upgrade.Version, "supported", up.Supported,
			"exit_code", ExitUpgradeRequired)
	case isStoreFault(err):
		n.health.storeErrors.Add(1)
		n.log.Error("the node stops: a store failed under a decided block; "+n.storeAdvice(), "err", err)
	case errors.Is(err, errWALWrite):
		n.log.Error("the node stops: it cannot write its consensus WAL, so it must not sign anything; "+
			"free space on the disk of "+filepath.Join(n.home, DataDir, WALFile)+" (or check the disk) "+
			"and start the node again", "err", err)
	default:
		n.log.Error("the node stops on an error it cannot recover from; fix the cause and start it again", "err", err)
	}
}

// readiness lists why the node should not take traffic now; none means ready.
func (n *Node) readiness(connected []string) []string {
	var reasons []string
	h := &n.health
	if h.stalled.Load() {
		reasons = append(reasons, fmt.Sprintf("no block finalized for %s: consensus is stalled (the node's log says on what)",
			h.sinceLastBlock(time.Now()).Round(time.Second)))
	}
	if h.catchingUp.Load() {
		reasons = append(reasons, "catching up: block sync is fetching blocks from peers that are ahead")
	}
	if !n.soleValidator() {
		own := n.blocks.Height()
		switch tip := h.peersTip.Load(); {
		case len(connected) == 0:
			reasons = append(reasons, "no p2p peers connected")
		case !h.tipKnown.Load():
			reasons = append(reasons, "no peer has told its height yet: the node cannot know whether it is behind")
		case own+1 < tip:
			reasons = append(reasons, fmt.Sprintf("behind: at height %d, peers at %d", own, tip))
		}
		if r := n.quorumReach(connected); r != "" {
			reasons = append(reasons, r)
		}
	}
	if h.upgradeRequired.Load() {
		reasons = append(reasons, "protocol upgrade required: this binary does not support the protocol version "+
			"in force at the next height; the node stops (see its log)")
	}
	if h.storeFault.Load() {
		reasons = append(reasons, "a store read or write failed (see the node's log); restart the node once the store is repaired")
	}
	reasons = append(reasons, n.storageStalls(time.Now())...)
	if diskState(h.diskLevel.Load()) == diskCritical {
		reasons = append(reasons, fmt.Sprintf("disk nearly full: %d MB free for %s", h.diskFree.Load()>>20, filepath.Join(n.home, DataDir)))
	}
	return reasons
}

// quorumReach says why the validators this node is connected to (and itself, if it validates)
// cannot make a quorum of the next height's set, or "" when they can: without one, nothing this
// node hears of can finalize a block.
func (n *Node) quorumReach(connected []string) string {
	next := n.blocks.Height() + 1
	e := n.sched.Load().at(next)
	self := n.selfIndex(next)
	var power uint64
	var names []string
	for i, v := range e.Set.Validators {
		peer, name := "", fmt.Sprintf("validator %d", i)
		if i < len(e.Peers) && i < len(e.Names) { // a schedule read from state names them all
			peer, name = e.Peers[i], e.Names[i]
		}
		if i == self || (peer != "" && slices.Contains(connected, peer)) {
			power += v.Power
			names = append(names, name)
		}
	}
	if e.Set.IsQuorum(power) {
		return ""
	}
	return fmt.Sprintf("reaches validators with %d of %d voting power (%s): a quorum needs more than two thirds; check the p2p links",
		power, e.Set.TotalPower(), strings.Join(names, ", "))
}

// tipOf is the peers' height to measure this node against: the (f+1)-th highest claimed, so
// that up to f peers claiming heights that do not exist cannot keep the node unready forever.
func tipOf(heights map[string]uint64, f int) uint64 {
	hs := make([]uint64, 0, len(heights))
	for _, h := range heights {
		hs = append(hs, h)
	}
	if len(hs) == 0 {
		return 0
	}
	slices.Sort(hs)
	slices.Reverse(hs)
	return hs[min(f, len(hs)-1)]
}

// soleValidator reports whether the chain's next height has this node as its only validator
// (then no peers is normal).
func (n *Node) soleValidator() bool {
	h := n.blocks.Height() + 1
	return len(n.validatorsAt(h).Validators) == 1 && n.selfIndex(h) == 0
}

// logWALRecovery reports a torn last WAL record that OpenWAL cut off.
func logWALRecovery(log *slog.Logger, w *WAL) {
	if w == nil || w.torn == 0 {
		return
	}
	log.Warn("cut a torn record off the end of the consensus WAL; this is normal after a crash or "+
		"power loss during a write (the message was never sent, since sending waits for the write)",
		"path", w.path, "bytes_cut", w.torn, "records_kept", w.kept)
}
