package consensus

import (
	"container/heap"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// The simulator steps N cores in one goroutine over a seeded network that delays, reorders,
// duplicates and drops messages, with time as Tick calls, and checks after every Ready that no
// two nodes decide differently, that certificates verify, that no honest node signs two different
// things for a slot, and (where the scenario allows) that every honest node reaches the target
// height. The same seed reproduces the same run.

var (
	simRuns  = flag.Int("sim.runs", 1000, "seeded runs of the main simulator scenario (others run a fraction)")
	simSeed  = flag.Int64("sim.seed", -1, "run only this seed, to reproduce a failure")
	simTrace = flag.Bool("sim.trace", false, "print every delivery and its result (with -sim.seed)")
	simAll   = flag.Bool("sim.all", false, "run every seed of a scenario after a failure, to count failures")
)

// behaviour turns what a Byzantine validator's (honest) core wants to send into what it sends.
type behaviour func(s *sim, m Message) []routed

// routed is a message for one node, or for all (to == -1).
type routed struct {
	to int
	m  Message
}

type scenario struct {
	name      string
	powers    []uint64
	observers int
	heights   uint64 // every honest node must decide this many heights (when liveness is checked)
	drop, dup float64
	maxDelay  int // ticks; at least 1 per hop
	lateStart int // one validator may start up to this many ticks late
	partition int // for up to this many ticks, one or two validators are cut off from the rest
	// isolateLeader: the partition cuts off the view-0 leader of a random height instead, for at
	// least 100 ticks, so that height needs a view change.
	isolateLeader bool
	// restarts: one honest validator crashes and restarts this many times, at random ticks,
	// from what it persisted (its WAL), losing everything else.
	restarts int
	byz      string // name of a behaviour in behaviours, "" for all honest
	// twins: this many validators (other than byz's) run as two nodes at once, each its own core
	// with its own state and the same key (Twins, Bano et al. 2020), so they equivocate while each
	// instance follows the protocol. Each twinned key counts as one faulty validator.
	twins int
	// twinSplit: for up to partition ticks, each twin's two instances are on opposite sides of a
	// partition, and every other node on a random side, drawn anew every 10 to 70 ticks.
	twinSplit bool
	// maxView, when set, bounds the view in which each height is decided once the network is
	// stable (no partition) by the time every honest node entered it: liveness within a bounded
	// number of views, not only within maxTicks. The scenarios with faulty validators set it
	// with a margin: in 38,000 runs no such height needed a view above 2.
	maxView uint64
	// crash: one honest validator crashes at this point of its Ready handling, restarts from
	// what it made durable, and does so again; see sim_crash_test.go.
	crash crashPoint
	// outage: validators are killed and restarted over a network with one-sided links, pubsub's
	// seen cache and block sync; see sim_outage_test.go.
	outage   *outagePlan
	liveness bool
	maxTicks uint64
	share    int // runs = sim.runs / share

	// leaders: every node's core gets a leader schedule that skips validators that recently
	// missed their turn, from its decided values (sim_leaders_test.go).
	leaders bool

	// idle: a leader waits this many ticks for transactions before it proposes, as the node does
	// on an idle chain (empty_block_ms, half the view timeout by default).
	idle int
	// honestLeadersKeepView: on a network that drops nothing, a height whose view-0 leader is
	// honest is decided in view 0: no faulty validator can make others give up on it.
	honestLeadersKeepView bool
	// invalidCost, when set, bounds the ticks from entering a height to deciding it when its
	// view-0 leader is the Byzantine one and proposes a signed value the application refuses:
	// the validators must leave its view at once, not wait out the view timeout.
	invalidCost uint64
	// trustReplays: the receiving node does not mark a message that reached it from anyone but
	// its author as relayed (the negative control of the node's rule, stepConsensus).
	trustReplays bool
	// gossipRelay: each node's pubsub passes a publication it sees first on to every other node
	// (pubsub relays what its validator accepts), and drops later copies of it. A node does not
	// pass on a copy of its own validator's message (p2p.Deliver, node/admission.go), unless
	// relayOwnEchoes (the negative control: a replayed vote of an honest validator, passed on by
	// that validator's own node, reached the others from its author's peer and read as its lag).
	gossipRelay, relayOwnEchoes bool
	// byref: leaders' PRE-PREPAREs are proposals by reference, rebuilt by fetching what a node
	// lacks (sim_byref_test.go).
	byref *byrefPlan
	// slowest: every message of one honest validator (drawn per seed) takes this many ticks more
	// than anyone else's, so the others routinely decide before its votes arrive
	// (sim_slowest_test.go).
	slowest int
	// slowLink: messages from one validator to one other (both drawn per seed) take this many
	// ticks more, so with gossipRelay the others' relays reach that one first and its author's
	// own copy arrives as a duplicate (sim_slowest_test.go).
	slowLink int
	// dropAuthorDups: gossip drops a later copy of a vote even when it comes from its author
	// (the negative control of the node's rule: a duplicate PREPARE or COMMIT from its author's
	// own peer is stepped, node/admission.go stepAuthorDuplicates).
	dropAuthorDups bool
	// trustClosedPeers: a node takes a message read from a peer before its connection closed,
	// stepped after it was told of the close, as a sign of life (the negative control of the
	// node's rule, markRelayed).
	trustClosedPeers bool
	// noViewChange: every node is honest, nothing is dropped: no honest core may change view.
	noViewChange bool
	// timeoutsOnly: an honest core may leave a view only on its own view timeout or to join
	// f+1 others, never by a shortcut (leader away, silent or down) on leaders that are all
	// honest and connected. Weaker than noViewChange where the network's hops may outlast a
	// view: an idle leader waits half a timeout before it proposes.
	timeoutsOnly bool
}

var behaviours = map[string]behaviour{
	"forge":      forge,
	"replay":     replay,
	"badvalue":   badValue,
	"future":     farFuture,
	"doublevote": doubleVote,
	"mixed":      mixed,
	"equivocate": equivocateLeader,
	"silent":     func(*sim, Message) []routed { return nil },
	"byref":      byrefBehaviour,
}

func TestSimulator(t *testing.T) {
	scenarios := []scenario{
		{name: "4-lossy", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 4, drop: 0.1, dup: 0.1, maxDelay: 3, lateStart: 4, liveness: true, maxTicks: 3000, share: 1},
		{name: "4-lossless", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 5, maxDelay: 4, liveness: true, maxTicks: 1000, share: 10},
		{name: "4-very-lossy", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 4, drop: 0.4, dup: 0.2, maxDelay: 5, liveness: true, maxTicks: 20000, share: 10},
		{name: "4-partition", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 6, drop: 0.05, dup: 0.05, maxDelay: 3, partition: 80, liveness: true, maxTicks: 5000, share: 10},
		{name: "7-unequal-lossy", powers: []uint64{1, 2, 3, 4, 5, 6, 7}, observers: 1, heights: 4, drop: 0.1, dup: 0.1, maxDelay: 3, lateStart: 4, liveness: true, maxTicks: 3000, share: 10},
		{name: "4-forge", powers: []uint64{1, 1, 1, 1}, heights: 4, drop: 0.05, dup: 0.05, maxDelay: 3, byz: "forge", maxView: 4, liveness: true, maxTicks: 3000, share: 10},
		{name: "4-replay", powers: []uint64{1, 1, 1, 1}, heights: 4, drop: 0.05, dup: 0.05, maxDelay: 3, byz: "replay", maxView: 4, liveness: true, maxTicks: 3000, share: 10},
		replayIdleScenario(),
		// A leader whose proposals the application refuses costs a view change, not a timeout.
		{name: "4-badvalue", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 8, maxDelay: 3, byz: "badvalue", maxView: 1, invalidCost: simViewTimeout / 2, liveness: true, maxTicks: 3000, share: 10},
		{name: "4-future", powers: []uint64{1, 1, 1, 1}, heights: 4, drop: 0.05, dup: 0.05, maxDelay: 3, byz: "future", maxView: 4, liveness: true, maxTicks: 3000, share: 10},
		{name: "4-doublevote", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 4, drop: 0.05, dup: 0.05, maxDelay: 3, byz: "doublevote", maxView: 4, liveness: true, maxTicks: 3000, share: 5},
		{name: "7-unequal-mixed", powers: []uint64{3, 1, 2, 7, 5, 6, 4}, observers: 1, heights: 4, drop: 0.05, dup: 0.05, maxDelay: 3, byz: "mixed", maxView: 4, liveness: true, maxTicks: 3000, share: 10},
		// A leader that equivocates or stays silent stalls its height until a view change.
		{name: "4-equivocating-leader", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 4, drop: 0.05, dup: 0.05, maxDelay: 3, byz: "equivocate", maxView: 4, liveness: true, maxTicks: 3000, share: 5},
		{name: "4-silent", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 4, drop: 0.05, maxDelay: 3, byz: "silent", maxView: 4, liveness: true, maxTicks: 3000, share: 5},
		{name: "7-silent", powers: []uint64{1, 1, 1, 1, 1, 1, 1}, heights: 4, drop: 0.05, maxDelay: 3, byz: "silent", maxView: 4, liveness: true, maxTicks: 3000, share: 10},
		{name: "4-restarts", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 6, drop: 0.1, dup: 0.05, maxDelay: 3, restarts: 4, liveness: true, maxTicks: 5000, share: 5},
		{name: "4-silent-restarts", powers: []uint64{1, 1, 1, 1}, heights: 5, drop: 0.05, maxDelay: 3, byz: "silent", restarts: 3, maxView: 4, liveness: true, maxTicks: 5000, share: 5},
		// Twins: a validator's key runs in two honest cores at once (sim_twins_test.go).
		{name: "4-twins", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 5, drop: 0.05, dup: 0.05, maxDelay: 3, twins: 1, maxView: 3, liveness: true, maxTicks: 3000, share: 10},
		{name: "4-twins-split", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 6, drop: 0.05, dup: 0.05, maxDelay: 3, twins: 1, twinSplit: true, partition: 200, maxView: 3, liveness: true, maxTicks: 5000, share: 10},
		{name: "7-twins-two", powers: []uint64{1, 1, 1, 1, 1, 1, 1}, heights: 5, drop: 0.05, dup: 0.05, maxDelay: 3, twins: 2, twinSplit: true, partition: 200, maxView: 4, liveness: true, maxTicks: 5000, share: 20},
		{name: "7-twins-silent", powers: []uint64{1, 1, 1, 1, 1, 1, 1}, heights: 5, drop: 0.05, maxDelay: 3, byz: "silent", twins: 1, twinSplit: true, partition: 200, maxView: 4, liveness: true, maxTicks: 5000, share: 20},
		// Crash and replay at each point of the Ready handling (sim_crash_test.go).
		{name: "4-crash-before-persist", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 6, drop: 0.05, dup: 0.05, maxDelay: 3, crash: crashBeforePersist, liveness: true, maxTicks: 5000, share: 10},
		{name: "4-crash-before-send", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 6, drop: 0.05, dup: 0.05, maxDelay: 3, crash: crashBeforeSend, liveness: true, maxTicks: 5000, share: 10},
		{name: "4-crash-before-store", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 6, drop: 0.05, dup: 0.05, maxDelay: 3, crash: crashBeforeStore, liveness: true, maxTicks: 5000, share: 10},
		{name: "4-crash-before-advance", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 6, drop: 0.05, dup: 0.05, maxDelay: 3, crash: crashBeforeAdvance, liveness: true, maxTicks: 5000, share: 10},
		{name: "4-leader-partition", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 6, drop: 0.05, dup: 0.05, maxDelay: 3, partition: 200, isolateLeader: true, liveness: true, maxTicks: 5000, share: 5},
	}
	scenarios = append(scenarios, outageScenarios()...)
	scenarios = append(scenarios, byrefScenarios()...)
	scenarios = append(scenarios, slowestIdleScenario(), slowLinkIdleScenario(), jitterIdleScenario())
	// The soak target reads this line: every run of every scenario, and what failed.
	var total, safety, liveness atomic.Int64
	t.Cleanup(func() {
		fmt.Printf("%d runs, %d safety violations, %d liveness failures\n", total.Load(), safety.Load(), liveness.Load())
	})
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			runs := *simRuns / sc.share
			if raceEnabled && *simSeed < 0 {
				runs /= 10 // ed25519 is ~7x slower under -race; the plain run covers the seeds
			}
			runs = max(runs, 1)
			first := int64(1)
			if *simSeed >= 0 {
				first, runs = *simSeed, 1
			}
			stats := simStats{}
			for seed := first; seed < first+int64(runs); seed++ {
				total.Add(1)
				if err := runSim(sc, seed, &stats); err != nil {
					if strings.Contains(err.Error(), "liveness:") {
						liveness.Add(1)
					} else {
						safety.Add(1) // every other check is of safety or of a bound
					}
					t.Errorf("seed %d: %v\nreproduce: go test ./consensus -run 'TestSimulator/%s$' -sim.seed=%d -v", seed, err, sc.name, seed)
					if !*simAll {
						t.FailNow()
					}
				}
			}
			t.Logf("%d runs: %d heights decided, %d messages delivered, %d dropped, %d decisions sent, %d block syncs, %d evidence records, %d view changes, highest view on a stable network %d",
				runs, stats.heights, stats.delivered, stats.dropped, stats.decisions, stats.syncs, stats.evidence, stats.viewChanges, stats.stableView)
			if sc.outage != nil {
				t.Logf("%d kills, %d one-sided links; longest wait for a decision on a stable network %d ticks (bound %d); %d slots of decided heights signed anew after a wipe",
					stats.kills, stats.oneSided, stats.maxGap, sc.outage.maxGap, stats.wipeResigned)
			}
			if sc.crash != crashNone {
				t.Logf("%d crashes %v; %d slots signed anew after a crash lost an unpersisted signature", stats.crashes, sc.crash, stats.resigned)
			}
			// Over enough runs, a scenario that never produced what it exists to test tested nothing.
			if runs >= 50 && sc.twins > 0 && stats.caught == 0 {
				t.Errorf("%d runs with twins and no honest node ever caught them equivocating", runs)
			}
			if runs >= 50 && sc.crash == crashBeforePersist && stats.resigned == 0 {
				t.Errorf("%d runs in which no lost signature was ever replaced by a different one", runs)
			}
		})
	}
}

type simStats struct {
	heights, delivered, dropped, decisions, syncs, evidence, viewChanges int
	crashes, resigned                                                    int
	kills, oneSided                                                      int
	wipeResigned                                                         int // see drain
	ownDuplicates                                                        int // see publish
	maxGap                                                               uint64
	caught                                                               int // honest Steps that returned ErrEquivocation
	slowStale                                                            int // the slowest validator's own votes that arrived stale
	// stableView is the highest view a height entered on a stable network was decided in.
	stableView uint64
	// lateViews counts heights an honest validator decided in a view above 0.
	lateViews int
	byref     byrefStats
}

type simNode struct {
	core      *Core
	app       *testApp
	index     int // validator index, -1 for an observer
	startAt   uint64
	decided   []Committed
	proposeAt uint64
	proposal  *ProposalRequest
	syncedAt  uint64
	signed    map[slotKey]Digest // everything this node ever persisted
	wal       []Message
	out       outageNode
	relayed   map[uint64]bool // gossipRelay: the publications this node's pubsub has seen
}

type slotKey struct {
	height, view uint64
	typ          MsgType
}

type envelope struct {
	at, seq uint64
	to      int
	m       Message
	// from and its life (see outageNode), -1 for a block served by sync; pub names the pubsub
	// publication, the same for the copies of one send.
	from, life int
	// sent is the tick the sender handed it to the network (outagePlan.deliverSent).
	sent uint64
	pub  uint64
	// gossip names the publication for gossipRelay, the same for every copy and relay of it.
	gossip uint64
}

type queue []envelope

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(envelope)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type sim struct {
	sc    scenario
	seed  int64
	rng   *rand.Rand
	vals  ValidatorSet
	nodes []*simNode
	byz   int // index of the Byzantine validator, -1 if none
	// faulty marks, per node, those not held to the honest invariants: the Byzantine validator's
	// node and both instances of every twinned key.
	faulty []bool
	twins  []int // the twinned validators
	// firstEntered is, per height, the tick at which the first honest node entered it.
	firstEntered map[uint64]uint64
	crashes      crashState
	out          outageState
	now          uint64
	q            queue
	seq          uint64
	gossipSeq    uint64 // gossipRelay's publication names (apart from seq: seeds keep their runs)
	decided      map[uint64]Digest
	sigs         *sigCache
	history      []Message // what the Byzantine node received, for replay
	// cut is the side of the partition each node is on during [cutFrom, cutTo).
	cut            []bool
	cutFrom, cutTo uint64
	nextSplit      uint64 // when the twins' partition is drawn anew
	forged         map[string]Message
	ref            *byrefState // byref's model
	slow           int         // the slowest validator (scenario.slowest), -1 if none
	slowFrom       int         // scenario.slowLink's link, from slowFrom to slowTo; -1 if none
	slowTo         int
	stats          *simStats
	err            error
}

func runSim(sc scenario, seed int64, stats *simStats) error {
	s := &sim{
		sc:       sc,
		seed:     seed,
		rng:      rand.New(rand.NewSource(seed)),
		vals:     testSet(sc.powers...),
		byz:      -1,
		slow:     -1,
		slowFrom: -1,
		slowTo:   -1,
		decided:  make(map[uint64]Digest),
		sigs:     newSigCache(),
		forged:   make(map[string]Message),
		stats:    stats,
	}
	n := len(sc.powers)
	if sc.byz != "" {
		s.byz = s.rng.Intn(n)
	}
	late := -1
	if sc.lateStart > 0 {
		late = s.rng.Intn(n)
	}
	if sc.slowest > 0 {
		s.slow = s.rng.Intn(n)
		for s.slow == s.byz {
			s.slow = s.rng.Intn(n)
		}
	}
	if sc.slowLink > 0 {
		s.slowFrom, s.slowTo = s.rng.Intn(n), s.rng.Intn(n-1)
		if s.slowTo >= s.slowFrom {
			s.slowTo++
		}
	}
	for i := 0; i < n+sc.observers; i++ {
		nd := &simNode{app: &testApp{}, index: i, signed: make(map[slotKey]Digest)}
		if i >= n {
			nd.index = -1
		}
		if i == late {
			nd.startAt = uint64(1 + s.rng.Intn(sc.lateStart))
		}
		s.nodes = append(s.nodes, nd)
	}
	s.addTwins()
	s.firstEntered = map[uint64]uint64{1: 0}
	s.cut = make([]bool, len(s.nodes))
	if sc.twinSplit {
		s.splitTwins()
	} else if sc.partition > 0 {
		s.cutFrom = uint64(s.rng.Intn(20))
		s.cutTo = s.cutFrom + 1 + uint64(s.rng.Intn(sc.partition))
		if sc.isolateLeader {
			s.cutTo += 100
			s.cut[s.vals.Leader(1+uint64(s.rng.Int63n(int64(sc.heights))), 0)] = true
		} else {
			for range 1 + s.rng.Intn(2) {
				s.cut[s.rng.Intn(n)] = true
			}
		}
	}
	restartAt := map[uint64]int{}
	if sc.restarts > 0 {
		who := s.rng.Intn(n)
		for s.faulty[who] {
			who = s.rng.Intn(n)
		}
		for range sc.restarts {
			restartAt[uint64(1+s.rng.Intn(400))] = who
		}
	}
	if sc.crash != crashNone {
		s.planCrashes()
	}
	if sc.outage != nil {
		s.initOutages()
	}
	for s.now = 0; s.now <= sc.maxTicks; s.now++ {
		for i, nd := range s.nodes {
			if nd.core == nil && nd.startAt == s.now {
				s.start(i)
			}
		}
		if i, ok := restartAt[s.now]; ok && s.nodes[i].core != nil {
			s.restart(i)
		}
		if sc.outage != nil {
			s.outageTick()
		}
		s.resplitTwins()
		for len(s.q) > 0 && s.q[0].at <= s.now {
			s.deliver(heap.Pop(&s.q).(envelope))
		}
		if sc.byref != nil {
			s.refTick()
		}
		for i, nd := range s.nodes {
			if nd.proposal != nil && nd.proposeAt <= s.now {
				s.propose(i)
			}
		}
		for i, nd := range s.nodes {
			if nd.core != nil {
				nd.core.Tick()
				s.drain(i)
			}
		}
		if s.err != nil {
			return s.err
		}
		if s.allDecided() && (sc.outage == nil || s.outageDone()) {
			break
		}
	}
	if err := s.checkCrashes(); err != nil {
		return err
	}
	for i, nd := range s.nodes {
		if !s.faulty[i] {
			s.stats.evidence += int(nd.core.evidenceCaught)
			if nd.core.future.size() > MaxFutureHeights*(3*n+1) {
				return fmt.Errorf("node %d buffers %d messages, over the bound", i, nd.core.future.size())
			}
			if nd.core.views.size() > MaxFutureViews*(3*n+1) {
				return fmt.Errorf("node %d buffers %d messages for later views, over the bound", i, nd.core.views.size())
			}
			vc := int(nd.core.Status().ViewChanges)
			s.stats.viewChanges += vc
			if sc.noViewChange && vc > 0 {
				return fmt.Errorf("liveness: honest node %d changed view %d times on a network that loses nothing", i, vc)
			}
		}
	}
	if sc.liveness && !s.allDecided() {
		var hs []uint64
		for _, nd := range s.nodes {
			hs = append(hs, uint64(len(nd.decided)))
		}
		return fmt.Errorf("liveness: after %d ticks, heights decided per node %v, want %d (byzantine %d, twins %v)", sc.maxTicks, hs, sc.heights, s.byz, s.twins)
	}
	return nil
}

func (s *sim) failf(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("tick %d: "+format, append([]any{s.now}, args...)...)
	}
}

func (s *sim) start(i int) {
	nd := s.nodes[i]
	cfg := Config{ChainID: testChain, Validators: s.vals, App: proposerApp{nd.app}, Height: 1, RetransmitTicks: simRetransmit, ViewTimeoutTicks: simViewTimeout, sigs: s.sigs, Schedule: s.scheduleFor(i)}
	if nd.index >= 0 {
		cfg.Key = keyFor(nd.index)
	}
	c, err := New(cfg)
	if err != nil {
		s.failf("New: %v", err)
		return
	}
	nd.core = c
	s.drain(i)
}

// restart replaces node i's core with one built from its WAL and its decided heights, the way
// the node restarts; whatever else it knew, and its pending proposal request, is lost.
func (s *sim) restart(i int) {
	if s.rebuild(i) {
		s.drain(i)
	}
}

// rebuild is restart without handling the new core's first Ready.
func (s *sim) rebuild(i int) bool {
	nd := s.nodes[i]
	nd.proposal = nil
	nd.app.applied = uint64(len(nd.decided))
	recent := nd.decided[max(0, len(nd.decided)-MaxFutureHeights):]
	c, err := New(Config{ChainID: testChain, Validators: s.vals, App: proposerApp{nd.app}, Height: nd.app.applied + 1,
		Key: keyFor(nd.index), RetransmitTicks: simRetransmit, ViewTimeoutTicks: simViewTimeout, Restore: nd.wal, Recent: recent, sigs: s.sigs, Schedule: s.scheduleFor(i)})
	if err != nil {
		s.failf("restart of node %d: %v", i, err)
		return false
	}
	nd.core = c
	return true
}

func (s *sim) allDecided() bool {
	for i, nd := range s.nodes {
		if !s.faulty[i] && uint64(len(nd.decided)) < s.sc.heights {
			return false
		}
	}
	return true
}

// drain handles node i's Ready batches the way the node does: persist, send, apply, Advance.
func (s *sim) drain(i int) {
	nd := s.nodes[i]
	for nd.core.HasReady() && s.err == nil {
		rd := nd.core.Ready()
		if s.crashHere(i, crashBeforePersist, &rd) {
			continue
		}
		// nd.signed outlives restarts: no two digests for one slot across all of a node's lives.
		for _, m := range rd.Persist {
			k := slotKey{m.Height, m.View, m.Type}
			if d, ok := nd.signed[k]; ok && d != m.Digest && i != s.byz {
				if _, decided := s.decided[m.Height]; nd.out.wiped && decided {
					// A wiped validator forgot what it signed; at a decided height the second
					// signature counts for nothing (no quorum forms there again). Elsewhere it
					// is an equivocation that safety would have to absorb as a fault.
					s.stats.wipeResigned++
				} else {
					s.failf("node %d signed two different %vs for height %d view %d", i, m.Type, m.Height, m.View)
				}
			}
			s.noteResigned(i, k, m.Digest)
			nd.signed[k] = m.Digest
			nd.wal = append(nd.wal, m)
		}
		if s.crashHere(i, crashBeforeSend, &rd) {
			continue
		}
		for _, m := range rd.Messages {
			if m.Type != MsgDecision && i != s.byz && !m.Relayed {
				// Only what is durable may leave (Ready.Persist's contract).
				if d, ok := nd.signed[slotKey{m.Height, m.View, m.Type}]; !ok || d != m.Digest {
					s.failf("node %d sent a %v for height %d view %d that it had not persisted", i, m.Type, m.Height, m.View)
				}
			}
			if m.Relayed && int64(m.From) == int64(nd.index) {
				s.failf("node %d marked its own %v as relayed", i, m.Type)
			}
			if m.Type == MsgDecision {
				s.stats.decisions++
			}
			if m.Type == MsgViewChange && !m.Relayed && int64(m.From) == int64(nd.index) {
				// Why the core left its view (Status.LeftView), as the node logs it; resends repeat it.
				why := nd.core.Status().LeftView
				if *simTrace {
					fmt.Printf("t=%d node %d view change h=%d v=%d: %s\n", s.now, i, m.Height, m.View, why)
				}
				if s.sc.timeoutsOnly && !s.faulty[i] && why != LeftByTimeout && why != LeftByJoining {
					s.failf("liveness: honest node %d left view %d of height %d (%s) with every leader honest and connected", i, m.View-1, m.Height, why)
				}
			}
			out := []routed{{to: -1, m: m}}
			if i == s.byz {
				out = behaviours[s.sc.byz](s, m)
			}
			for _, r := range out {
				s.send(i, r)
			}
		}
		if s.crashHere(i, crashBeforeStore, &rd) {
			continue
		}
		for _, c := range rd.Committed {
			s.checkCommitted(i, c)
			nd.app.applied = c.Height
			nd.decided = append(nd.decided, c)
		}
		if s.crashHere(i, crashBeforeAdvance, &rd) {
			continue
		}
		if rd.Propose != nil {
			// The node may wait for transactions before proposing.
			p := *rd.Propose
			nd.proposal, nd.proposeAt = &p, s.now+uint64(s.rng.Intn(3)+s.sc.idle)
			if s.sc.outage != nil {
				nd.proposeAt += uint64(s.sc.outage.proposeDelay)
			}
		}
		nd.core.Advance()
	}
}

func (s *sim) checkCommitted(i int, c Committed) {
	nd := s.nodes[i]
	if s.faulty[i] {
		return
	}
	if want := uint64(len(nd.decided)) + 1; c.Height != want {
		s.failf("node %d committed height %d, expected %d", i, c.Height, want)
	}
	if err := nd.app.CheckProposal(c.Height, c.Value); err != nil {
		s.failf("node %d committed an invalid value: %v", i, err)
	}
	if s.sc.byref != nil {
		s.refCommitted(i, c)
	}
	d := DigestOf(c.Value)
	if c.Certificate.Height != c.Height || c.Certificate.Digest != d {
		s.failf("node %d: certificate for height %d is for another value", i, c.Height)
	}
	if err := verifyCertificate(testChain, s.vals, &c.Certificate, s.sigs); err != nil {
		s.failf("node %d: certificate for height %d: %v", i, c.Height, err)
	}
	// Liveness in views: a height every honest node entered on a stable network is decided
	// within maxView views.
	entered, ok := s.firstEntered[c.Height]
	if ok && entered >= s.cutTo {
		s.stats.stableView = max(s.stats.stableView, c.Certificate.View)
	}
	if ok && s.sc.maxView > 0 && entered >= s.cutTo && c.Certificate.View > s.sc.maxView {
		s.failf("liveness: height %d, entered at tick %d on a stable network, decided in view %d, over the bound %d", c.Height, entered, c.Certificate.View, s.sc.maxView)
	}
	if s.sc.invalidCost > 0 && ok && int(s.vals.Leader(c.Height, 0)) == s.byz && s.now-entered > s.sc.invalidCost {
		s.failf("liveness: height %d, whose leader proposed an invalid value, decided %d ticks after it was entered, over the bound %d", c.Height, s.now-entered, s.sc.invalidCost)
	}
	if s.sc.honestLeadersKeepView && c.Certificate.View > 0 && int(s.vals.Leader(c.Height, 0)) != s.byz {
		s.failf("liveness: height %d, led by honest validator %d, decided in view %d: its turn was taken from it", c.Height, s.vals.Leader(c.Height, 0), c.Certificate.View)
	}
	if _, ok := s.firstEntered[c.Height+1]; !ok {
		s.firstEntered[c.Height+1] = s.now
	}
	if prev, ok := s.decided[c.Height]; ok && prev != d {
		s.failf("SAFETY: node %d decided %x at height %d, another node decided %x", i, d[:4], c.Height, prev[:4])
	}
	s.decided[c.Height] = d
	if i < len(s.sc.powers) {
		s.stats.heights++
		if c.Certificate.View > 0 {
			s.stats.lateViews++
		}
	}
}

// send puts copies of r on the network, each delayed 1..maxDelay ticks, some dropped, some twice.
func (s *sim) send(from int, r routed) {
	contentID, ok := s.publish(from, r.m)
	if !ok {
		return
	}
	var gossip uint64
	if s.sc.gossipRelay {
		s.gossipSeq++
		gossip = s.gossipSeq
	}
	for to := range s.nodes {
		if to == from || (r.to >= 0 && r.to != to) {
			continue
		}
		copies := 1
		if s.rng.Float64() < s.sc.dup {
			copies = 2
		}
		s.seq++
		pub := s.seq
		if contentID != 0 {
			pub = contentID
		}
		for range copies {
			if s.rng.Float64() < s.sc.drop || (s.cut[from] != s.cut[to] && s.now >= s.cutFrom && s.now < s.cutTo) || s.linkDown(from, to) {
				s.stats.dropped++
				continue
			}
			s.seq++
			delay := 1 + uint64(s.rng.Intn(s.sc.maxDelay))
			if from == s.slow {
				delay += uint64(s.sc.slowest)
			}
			if from == s.slowFrom && to == s.slowTo {
				delay += uint64(s.sc.slowLink)
			}
			heap.Push(&s.q, envelope{at: s.now + delay, seq: s.seq, to: to, m: r.m, from: from, life: s.nodes[from].out.life, sent: s.now, pub: pub, gossip: gossip})
		}
	}
}

// gossipOn is gossipRelay at node e.to: a publication seen before is dropped (false); one seen
// first is passed on to every other node but the one it came from, unless it is a copy of e.to's
// own validator's message (the node's rule) or e.to is faulty.
func (s *sim) gossipOn(e envelope) bool {
	if !s.sc.gossipRelay || e.gossip == 0 {
		return true
	}
	nd := s.nodes[e.to]
	if nd.relayed == nil {
		nd.relayed = map[uint64]bool{}
	}
	if nd.relayed[e.gossip] {
		return false
	}
	nd.relayed[e.gossip] = true
	own := nd.index >= 0 && int(e.m.From) == nd.index && e.m.Type != MsgDecision
	if s.faulty[e.to] || (own && !s.sc.relayOwnEchoes) {
		return true
	}
	for to := range s.nodes {
		if to == e.to || to == e.from {
			continue
		}
		s.seq++
		heap.Push(&s.q, envelope{at: s.now + 1 + uint64(s.rng.Intn(s.sc.maxDelay)), seq: s.seq, to: to, m: e.m,
			from: e.to, life: nd.out.life, sent: s.now, gossip: e.gossip})
	}
	return true
}

// authorDuplicate: e is a later copy of a vote that gossip drops, but it came from its author's
// own peer; the node steps those (stepAuthorDuplicates) so that an author whose own copies lose
// the race to others' relays is still heard from.
func (s *sim) authorDuplicate(e envelope) bool {
	return !s.sc.dropAuthorDups && e.from >= 0 && e.from == int(e.m.From) &&
		(e.m.Type == MsgPrepare || e.m.Type == MsgCommit)
}

func (s *sim) deliver(e envelope) {
	nd := s.nodes[e.to]
	if s.sc.outage != nil && s.now < nd.out.holdIn {
		e.at = nd.out.holdIn
		heap.Push(&s.q, e)
		return
	}
	if nd.core == nil || s.lostWithSender(e) || s.seenBefore(e) {
		return // not started, down, sent by a node that died before it left, or a duplicate
	}
	if !s.gossipOn(e) {
		if s.authorDuplicate(e) {
			s.step(e)
		}
		return // a later copy, dropped by gossip
	}
	if s.sc.byref != nil && !s.refDeliver(e) {
		return // parked while the node fetches its transactions
	}
	s.step(e)
}

// step hands a delivered message to its node's core and handles what follows.
func (s *sim) step(e envelope) {
	nd := s.nodes[e.to]
	s.stats.delivered++
	if e.from >= 0 && e.m.Type != MsgDecision && e.from != int(e.m.From) && !s.sc.trustReplays {
		// The node's rule (stepConsensus): only a copy from its author's own peer says the author
		// is alive or lags; one passed on by another is marked relayed, whatever it claims.
		e.m.Relayed = true
	}
	if e.from >= 0 && e.m.Type != MsgDecision && s.sc.outage != nil && nd.out.peerDown[e.from] && !s.sc.trustClosedPeers {
		// The node's rule (markRelayed): the connection to the peer it came from has closed, so it
		// was read before that and is no sign that its author is up now.
		e.m.Relayed = true
	}
	if e.to == s.byz {
		s.history = append(s.history, e.m)
		if len(s.history) > 256 {
			s.history = s.history[128:]
		}
	}
	err := nd.core.Step(e.m)
	if *simTrace {
		fmt.Printf("t=%d %d->%d %v h=%d v=%d from=%d sent=%d relayed=%v: %v\n", s.now, e.from, e.to, e.m.Type, e.m.Height, e.m.View, e.m.From, e.sent, e.m.Relayed, err)
	}
	if err != nil && !slices.Contains(s.faulty, true) && !errors.Is(err, ErrStaleHeight) && !errors.Is(err, ErrFutureHeight) && !errors.Is(err, ErrDuplicate) &&
		!errors.Is(err, ErrWrongView) && !errors.Is(err, ErrFutureView) {
		s.failf("node %d rejected honest %v h=%d from %d: %v", e.to, e.m.Type, e.m.Height, e.m.From, err)
	}
	if errors.Is(err, ErrEquivocation) && !s.faulty[e.to] {
		s.stats.caught++
	}
	if e.from == s.slow && int(e.m.From) == s.slow && errors.Is(err, ErrStaleHeight) {
		s.stats.slowStale++
	}
	if errors.Is(err, ErrFutureHeight) {
		if s.sc.outage != nil {
			s.wakeSync(e.to)
		} else {
			s.blockSync(e.to)
		}
	}
	s.drain(e.to)
}

// blockSync is what the node does when peers are further ahead than the core buffers: fetch the
// next block with its certificate from a peer and step it as a decision.
func (s *sim) blockSync(i int) {
	nd := s.nodes[i]
	if s.now-nd.syncedAt < 8 && nd.syncedAt != 0 {
		return
	}
	h := nd.core.Status().Height
	for j, peer := range s.nodes {
		if !s.faulty[j] && uint64(len(peer.decided)) >= h {
			nd.syncedAt = s.now
			s.stats.syncs++
			s.seq++
			heap.Push(&s.q, envelope{at: s.now + 1, seq: s.seq, to: i, m: DecisionMessage(0, peer.decided[h-1]), from: -1})
			return
		}
	}
}

func (s *sim) propose(i int) {
	nd := s.nodes[i]
	p := nd.proposal
	nd.proposal = nil
	value := valueFor(p.Height, fmt.Sprintf("v=%d;by=%d;r=%d", p.View, nd.index, s.rng.Int63()))
	if s.sc.byref != nil {
		s.refProposed(i, value)
	}
	// A slot may be gone by the time the node proposes: decided, or its view timed out.
	if err := nd.core.Propose(p.Height, p.View, value); err != nil && !errors.Is(err, ErrStaleHeight) && !errors.Is(err, ErrWrongView) && !errors.Is(err, ErrNotRequested) {
		s.failf("node %d: Propose(%d, %d): %v", i, p.Height, p.View, err)
	}
	s.drain(i)
}
