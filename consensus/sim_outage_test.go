package consensus

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"
)

// Outages (issue #9, "the chain never stalls"). A 100,000-run soak of the other scenarios was
// clean while the README tour on real processes (kill a validator, restart it, kill and restart
// another) stalled the chain for minutes: the simulator did not do what the real network does.
// An outage scenario models it:
//
//   - Kills: up to f validators at a time are down for a while. Whatever is sent to a down node is
//     lost, and so is its own output still on the network (its outbound queues die with it).
//   - Restarts: from what survives a crash only, the WAL (Ready.Persist, in order) and the stored
//     blocks, with Config.Restore, Recent and Height exactly as node.startCore builds them.
//   - Gossip: each Ready message is one pubsub Publish; a receiver drops a second copy of one
//     message (pubsub's seen cache, seenTTL long), so a duplicate never counts twice. What makes
//     two copies "one message" is the message ID. p2p gives every publication its own ID, so a
//     retransmission, published anew, gets through. With contentIDs the model does what p2p did
//     before that: the ID is the payload's hash, and a node's pubsub drops its own publication of
//     a payload it already published or received within seenTTL. A retransmitted message is
//     then byte for byte the first copy, and a node that lost the first copy (it was down, or its
//     link was) cannot get it again until the ID expires.
//   - One-sided links: after a restart, the nodes that were connected to the victim when it died
//     keep a dead stream to it: their messages to it are lost while its messages reach them, until
//     a link checker resets the connection repair[0]..repair[1] ticks later (never, in the
//     negative control).
//   - Block sync as node/sync.go does it: ErrFutureHeight wakes the syncer, which otherwise polls
//     peers' heights; a node more than MaxFutureHeights behind (or behind and stuck) fetches the
//     certified blocks, stores and applies them, and the node replaces its core with a new one at
//     the new tip, with no WAL restore.
//   - Disconnections: a killed node's connections close with it, and each peer's node tells its
//     core so (SetPeerDown) a tick or three later; a restarted node's peers are told it is back
//     (the node's own rule, from libp2p's connectedness events). Drawn from a generator of their
//     own, so that the other draws of a seed stay what they were. Not with noDisconnects.
//   - A liveness bound: while the validators that are up and hear everyone hold a quorum, and
//     have been the same ones for a while, the chain decides a height at least every maxGap
//     ticks, not merely by the end of the run.

// outagePlan is a scenario's kills and restarts.
type outagePlan struct {
	kills            int    // kills in a run, up to f down at a time
	window           uint64 // kills happen in (20, window]
	downMin, downMax int    // ticks a victim stays down
	repairMin        int    // ticks after a restart before its one-sided links are repaired...
	repairMax        int    // ...at most; the bound on the link checker
	never            bool   // links are never repaired (the negative control)
	// contentIDs: gossip message IDs are the payload's hash (see the model above; the negative
	// control of TestSimulatorFindsContentIDStall).
	contentIDs bool
	// wipe: every victim loses its WAL and its blocks with its process, as after `rm -rf data`,
	// and starts again from height 1 (keys kept).
	wipe                bool
	maxGap              uint64 // ticks between decisions allowed on a stable network
	proposeDelay        int    // ticks a leader waits for transactions before it proposes
	syncPoll, syncStuck uint64 // ticks: the syncer's poll period, and "behind and stuck" delay
	// noDisconnects: peers never learn of a kill from their connections (the negative control of
	// TestSimulatorKilledLeaderGap, and a node whose links to a killed peer linger).
	noDisconnects bool
	// deliverSent: what a killed node sent before the tick it died had left its process and is
	// still delivered; only what it sent in that tick is lost. (A killed process's last messages
	// are in its peers' buffers already; without it they die with their sender.)
	deliverSent bool
	// script, if set, runs at every tick after the plan's own events: a scenario that needs a
	// fault at a chosen moment (sim_return_test.go) injects it there.
	script func(s *sim)
}

// Sync timings in ticks at the simulator's scale (a view timeout of 40 ticks stands for the node's
// 2 s): node/sync.go polls every 2 s and syncs a gap of a height or two after 3 s without progress.
const (
	simSyncPoll    = 40
	simSyncStuck   = 60
	simSyncMinGap  = 4   // syncMinRoundGap
	simSeenTTL     = 600 // p2p's seenTTL, 30 s
	neverRepaired  = math.MaxUint64
	simViewTimeout = 40
	simRetransmit  = 8
)

// outageState is a run's outage plan as it unfolds.
type outageState struct {
	kills    int    // kills so far
	nextKill uint64 // tick of the next kill attempt
	// brokenUntil[from][to]: from's messages to to are lost until this tick.
	brokenUntil [][]uint64
	// stableSince is the tick of the last kill, restart or link repair, or change in who is up
	// and hearing everyone (see stable).
	stableSince uint64
	maskSince   uint64 // the last change in who is up and hearing everyone
	lastEvent   uint64 // the last kill or restart
	healthy     uint64 // bitmask of the validators up and hearing every node up
	top         uint64 // highest height decided by any honest node
	topAt       uint64 // tick it was first decided
	maxGap      uint64 // longest wait for a decision on a stable network
	quietAt     uint64 // no outage event happens after this tick
	// links draws when peers notice a kill or a return; peerEvents are those not yet told.
	links      *rand.Rand
	peerEvents []peerEvent
}

// peerEvent is a node's connection to validator v closing (down) or opening again, as node to's
// core hears of it at tick at.
type peerEvent struct {
	at    uint64
	to, v int
	down  bool
}

// outageNode is what the outage model keeps per node.
type outageNode struct {
	down      bool
	upAt      uint64 // tick of the process's last start
	downAt    uint64
	restartAt uint64
	life      int // bumped at each kill: output of an earlier life still in flight is lost
	seen      map[uint64]uint64
	// The block syncer's state (node/sync.go).
	syncWake      bool
	syncNext      uint64
	syncNotBefore uint64
	lastHeight    uint64
	lastProgress  uint64
	fetchAt       uint64 // when a fetch in flight lands, 0 if none
	fetched       []Committed
	// syncHold: the syncer starts no round before this tick (a node still catching up, with its
	// sync slowed by the network or a frozen peer). holdIn: what is sent to the node before this
	// tick reaches it only then (a node falling behind).
	syncHold, holdIn uint64
	// peerDown: the validators whose connection this node was last told closed (tellPeers), as
	// the node's peersDown.
	peerDown map[int]bool
	wiped    bool // it lost its WAL and blocks at least once
}

func (s *sim) initOutages() {
	n := len(s.nodes)
	s.out.brokenUntil = make([][]uint64, n)
	for i := range s.out.brokenUntil {
		s.out.brokenUntil[i] = make([]uint64, n)
	}
	s.out.links = rand.New(rand.NewSource(s.seed ^ 0x6c696e6b)) // "link"
	s.out.nextKill = 20 + uint64(s.rng.Intn(40))
	s.out.quietAt = s.sc.outage.window + uint64(s.sc.outage.downMax+s.sc.outage.repairMax)
	for _, nd := range s.nodes {
		nd.out.seen = make(map[uint64]uint64)
		nd.out.syncNext = uint64(s.rng.Intn(int(s.sc.outage.syncPoll)))
	}
}

// outageTick runs the outage plan for this tick: kills, restarts, repairs, block sync, and the
// liveness bound. Precondition: sc.outage is set.
func (s *sim) outageTick() {
	p := s.sc.outage
	o := &s.out
	if p.script != nil {
		defer p.script(s)
	}
	if s.now == o.nextKill && o.kills < p.kills && s.now <= p.window {
		s.maybeKill()
		o.nextKill = s.now + 1 + uint64(s.rng.Intn(int(2*p.window)/p.kills))
	}
	for i, nd := range s.nodes {
		if nd.out.down && s.now >= nd.out.restartAt {
			s.restartAfterOutage(i)
		}
	}
	s.tellPeers()
	for i, nd := range s.nodes {
		if !nd.out.down && nd.core != nil {
			s.syncTick(i)
		}
	}
	s.checkGap()
}

// maybeKill takes down a random honest validator if the power left up is still a quorum.
func (s *sim) maybeKill() {
	p := s.sc.outage
	n := len(s.sc.powers)
	v := s.rng.Intn(n)
	if s.faulty[v] || s.nodes[v].out.down || s.nodes[v].core == nil {
		return
	}
	var up uint64
	for i := range n {
		if i != v && !s.nodes[i].out.down {
			up += s.vals.Validators[i].Power
		}
	}
	if !isQuorum(up, s.vals.TotalPower()) {
		return
	}
	s.out.kills++
	s.kill(v, uint64(p.downMin+s.rng.Intn(p.downMax-p.downMin+1)))
}

// kill takes validator v down for the given ticks: its core and its output in flight are lost.
func (s *sim) kill(v int, down uint64) {
	nd := s.nodes[v]
	nd.out.down, nd.out.downAt = true, s.now
	nd.out.restartAt = s.now + down
	nd.out.life++
	nd.core, nd.proposal = nil, nil
	nd.out.fetchAt, nd.out.fetched, nd.out.syncWake = 0, nil, false
	s.stats.kills++
	s.out.lastEvent = s.now
	s.peersNotice(v, true)
}

// peersNotice has every other node's core told, a tick or three from now, that its connection to
// validator v closed (down) or opened again.
func (s *sim) peersNotice(v int, down bool) {
	if s.sc.outage.noDisconnects || v >= len(s.sc.powers) {
		return
	}
	for j := range s.nodes {
		if j != v {
			s.out.peerEvents = append(s.out.peerEvents, peerEvent{at: s.now + 1 + uint64(s.out.links.Intn(3)), to: j, v: v, down: down})
		}
	}
}

// tellPeers hands the connection events due by now to the cores of the nodes that are up; a node
// down at the time misses them (its next process starts with none).
func (s *sim) tellPeers() {
	kept := s.out.peerEvents[:0]
	for _, e := range s.out.peerEvents {
		if e.at > s.now {
			kept = append(kept, e)
			continue
		}
		if nd := s.nodes[e.to]; !nd.out.down && nd.core != nil {
			nd.core.SetPeerDown(uint32(e.v), e.down)
			if nd.out.peerDown == nil {
				nd.out.peerDown = map[int]bool{}
			}
			nd.out.peerDown[e.v] = e.down
		}
	}
	s.out.peerEvents = kept
}

// restartAfterOutage starts node i again from its WAL and stored blocks, as node.Run does, and
// breaks the links to it from the nodes that were connected to it when it died.
func (s *sim) restartAfterOutage(i int) {
	p := s.sc.outage
	nd := s.nodes[i]
	nd.out.down = false
	nd.out.upAt = s.now
	s.out.lastEvent = s.now
	nd.out.seen = make(map[uint64]uint64)
	nd.out.peerDown = nil // a new process has seen no connection close
	nd.out.lastHeight, nd.out.lastProgress = uint64(len(nd.decided)), s.now
	nd.out.syncNext = s.now + p.syncPoll
	s.peersNotice(i, false)
	for j, peer := range s.nodes {
		if j == i {
			continue
		}
		s.out.brokenUntil[i][j] = 0 // the restarted node dials afresh
		if peer.out.down || peer.core == nil || peer.out.upAt > nd.out.downAt {
			continue // not connected to it when it died
		}
		until := s.now + uint64(p.repairMin+s.rng.Intn(p.repairMax-p.repairMin+1))
		if p.never {
			until = neverRepaired
		}
		s.out.brokenUntil[j][i] = until
		s.stats.oneSided++
	}
	if p.wipe {
		nd.wal, nd.decided = nil, nil
		nd.out.wiped = true
	}
	if s.rebuild(i) {
		s.drain(i)
	}
}

// linkDown reports whether from's messages to to are lost to a one-sided link.
func (s *sim) linkDown(from, to int) bool {
	return s.sc.outage != nil && from >= 0 && s.now < s.out.brokenUntil[from][to]
}

// stable reports whether the validators that are up and hear every other node that is up hold a
// quorum, and keeps stableSince: the last kill, restart, link repair or change in who they are. A
// link never repaired counts as due to be repaired repairMax ticks after the restart, so the bound
// applies from then on.
func (s *sim) stable() bool {
	p := s.sc.outage
	var healthy uint64 // bitmask
	var power uint64
	since := s.out.lastEvent
	for i := range s.sc.powers {
		nd := s.nodes[i]
		if nd.out.down || nd.core == nil {
			continue
		}
		hears := true
		for j, peer := range s.nodes {
			until := s.out.brokenUntil[j][i]
			if until == neverRepaired {
				until = nd.out.upAt + uint64(p.repairMax)
			}
			if j != i && !peer.out.down && s.now < until {
				hears = false
			} else if until <= s.now {
				since = max(since, until)
			}
		}
		if hears {
			healthy |= 1 << i
			power += s.vals.Validators[i].Power
		}
	}
	if healthy != s.out.healthy {
		s.out.healthy, s.out.maskSince = healthy, s.now
	}
	s.out.stableSince = max(since, s.out.maskSince)
	return isQuorum(power, s.vals.TotalPower())
}

// checkGap enforces the liveness bound: on a stable network, a decision at least every maxGap
// ticks (counted from the later of the last decision and the moment the network became stable).
func (s *sim) checkGap() {
	o := &s.out
	top := uint64(len(s.decided))
	stable := s.stable()
	if top > o.top {
		if stable {
			gap := s.now - max(o.topAt, o.stableSince)
			o.maxGap = max(o.maxGap, gap)
			s.stats.maxGap = max(s.stats.maxGap, gap)
		}
		o.top, o.topAt = top, s.now
		return
	}
	if stable && s.now-max(o.topAt, o.stableSince) > s.sc.outage.maxGap {
		s.failf("liveness: stall: no decision for %d ticks on a stable network (bound %d; last decision, height %d, at tick %d; stable since tick %d); nodes: %s",
			s.now-max(o.topAt, o.stableSince), s.sc.outage.maxGap, o.top, o.topAt, o.stableSince, s.outageSummary())
	}
}

// outageDone reports whether an outage run has gone on long enough past its last event to judge it.
func (s *sim) outageDone() bool {
	return s.now >= s.out.quietAt+3*s.sc.outage.maxGap
}

// seenBefore is pubsub's seen cache at node to: a second copy of one publication is dropped.
func (s *sim) seenBefore(e envelope) bool {
	if s.sc.outage == nil || e.pub == 0 {
		return false
	}
	seen := s.nodes[e.to].out.seen
	if at, ok := seen[e.pub]; ok && s.now-at < simSeenTTL {
		return true
	}
	seen[e.pub] = s.now
	return false
}

// publish is the sender's side of a pubsub Publish. It returns the message ID to use for every
// copy, or 0 when each send is its own publication (p2p's per-publication IDs), and false when the
// sender's own pubsub drops the publication: with content IDs, a payload this node published or
// received within seenTTL is a duplicate to it, and it never leaves.
func (s *sim) publish(from int, m Message) (uint64, bool) {
	if s.sc.outage == nil || !s.sc.outage.contentIDs || from < 0 {
		return 0, true
	}
	b, err := EncodeMessage(&m)
	if err != nil {
		s.failf("encode message of node %d: %v", from, err)
		return 0, false
	}
	sum := sha256.Sum256(b)
	id := binary.BigEndian.Uint64(sum[:8]) | 1 // never 0
	seen := s.nodes[from].out.seen
	if at, ok := seen[id]; ok && s.now-at < simSeenTTL {
		s.stats.ownDuplicates++
		return 0, false
	}
	seen[id] = s.now
	return id, true
}

// lostWithSender reports whether e was still in its sender's outbound queues when it was killed.
func (s *sim) lostWithSender(e envelope) bool {
	if s.sc.outage == nil || e.from < 0 || s.nodes[e.from].out.life == e.life {
		return false
	}
	if s.sc.outage.deliverSent && s.nodes[e.from].out.life == e.life+1 && e.sent < s.nodes[e.from].out.downAt {
		return false // it had left before the process died
	}
	return true
}

// wakeSync is node.syncer.wake: a message from too far ahead.
func (s *sim) wakeSync(i int) { s.nodes[i].out.syncWake = true }

// syncTick runs node i's block syncer: a round when woken (at most every simSyncMinGap ticks) or
// when the poll is due, and the apply of a fetch that has landed. Precondition: i is up.
func (s *sim) syncTick(i int) {
	p := s.sc.outage
	nd := s.nodes[i]
	o := &nd.out
	if s.now < o.syncHold {
		return
	}
	if o.fetchAt != 0 {
		if s.now >= o.fetchAt {
			s.applySynced(i)
		}
		return
	}
	if !(o.syncWake && s.now >= o.syncNotBefore) && s.now < o.syncNext {
		return
	}
	o.syncWake = false
	o.syncNext, o.syncNotBefore = s.now+p.syncPoll, s.now+simSyncMinGap
	own := uint64(len(nd.decided))
	if own != o.lastHeight {
		o.lastHeight, o.lastProgress = own, s.now
	}
	// Peers answer status requests over their own streams, which one-sided gossip links spare.
	best, target := -1, own
	for j, peer := range s.nodes {
		if j != i && !s.faulty[j] && !peer.out.down && peer.core != nil && uint64(len(peer.decided)) > target {
			best, target = j, uint64(len(peer.decided))
		}
	}
	if best < 0 || (target <= own+MaxFutureHeights && s.now-o.lastProgress < p.syncStuck) {
		return
	}
	o.fetched = append([]Committed(nil), s.nodes[best].decided[own:target]...)
	o.fetchAt = s.now + 1 + uint64(s.rng.Intn(3))
}

// applySynced stores and applies the fetched blocks the node does not have yet and, if there were
// any, replaces its core with one at the new tip, as the node's loop does (startCore(nil)).
func (s *sim) applySynced(i int) {
	nd := s.nodes[i]
	blocks := nd.out.fetched
	nd.out.fetchAt, nd.out.fetched = 0, nil
	applied := 0
	for _, c := range blocks {
		if c.Height != uint64(len(nd.decided))+1 {
			continue // decided by consensus meanwhile
		}
		s.checkCommitted(i, c)
		nd.app.applied = c.Height
		nd.decided = append(nd.decided, c)
		applied++
	}
	if applied == 0 {
		return
	}
	s.stats.syncs++
	nd.proposal = nil
	recent := nd.decided[max(0, len(nd.decided)-MaxFutureHeights):]
	cfg := Config{ChainID: testChain, Validators: s.vals, App: proposerApp{nd.app}, Height: nd.app.applied + 1,
		RetransmitTicks: simRetransmit, ViewTimeoutTicks: simViewTimeout, Recent: recent, sigs: s.sigs, Schedule: s.scheduleFor(i)}
	if nd.index >= 0 {
		cfg.Key = keyFor(nd.index)
	}
	c, err := New(cfg)
	if err != nil {
		s.failf("core of node %d after block sync: %v", i, err)
		return
	}
	nd.core = c
	s.drain(i)
}

// TestSimulatorFindsOneSidedLinkStall is the negative control of the outage model: with the links
// to a restarted validator never repaired, the simulator must report the stall the README tour hit
// on real processes, and with them repaired, the same run must pass. A model that cannot fail this
// way would not have found the bug.
func TestSimulatorFindsOneSidedLinkStall(t *testing.T) {
	// Most seeds stall without repairs (37 of the first 40); seed 1's run, whose timing changed
	// when views whose leader is away were shortened, no longer does.
	_, err := negativeControl(t, 2, "never-repaired", func(p *outagePlan) { p.never = true })
	t.Logf("never repaired: %v", err)
}

// negativeControl runs seed of the first outage scenario with its plan changed by change, which
// must stall it, and then unchanged, which must pass. It returns the stalled run's stats and stall.
func negativeControl(t *testing.T, seed int64, name string, change func(*outagePlan)) (simStats, error) {
	t.Helper()
	sc := outageScenarios()[0]
	changed := sc
	plan := *sc.outage
	change(&plan)
	changed.outage = &plan
	changed.name += "-" + name
	var stats simStats
	err := runSim(changed, seed, &stats)
	if err == nil || !isLiveness(err) {
		t.Fatalf("seed %d, %s: err = %v, want a liveness failure (a stall)", seed, name, err)
	}
	if err := runSim(sc, seed, &simStats{}); err != nil {
		t.Fatalf("seed %d as modelled: %v", seed, err)
	}
	return stats, err
}

// TestSimulatorFindsContentIDStall is the negative control of the gossip model's message IDs:
// with IDs from content, a retransmitted view change is a duplicate to its sender's own pubsub
// for seenTTL, so a validator restarted after the first copies cannot join the view change. The
// README tour on real processes stalled that way (two validators in view 2, two in view 1, all
// up and connected, for over 30 s). About one run in ten of 4-outages stalls so; with p2p's
// per-publication IDs the same runs pass. Which seeds stall moves whenever a rule changes the
// timing (seed 0, then seed 3 stopped stalling), so the test takes the first of 60 that does.
func TestSimulatorFindsContentIDStall(t *testing.T) {
	contentIDs := func(p *outagePlan) { p.contentIDs = true }
	for seed := int64(0); seed < 60; seed++ {
		sc := outageScenarios()[0]
		plan := *sc.outage
		contentIDs(&plan)
		sc.outage = &plan
		if err := runSim(sc, seed, &simStats{}); !isLiveness(err) {
			continue
		}
		stats, err := negativeControl(t, seed, "content-ids", contentIDs)
		if stats.ownDuplicates == 0 {
			t.Errorf("content IDs stalled the run, but no publication was dropped as its sender's own duplicate")
		}
		t.Logf("seed %d, content IDs: %v (%d publications dropped by their sender's seen cache)", seed, err, stats.ownDuplicates)
		return
	}
	t.Fatalf("content IDs stalled none of 60 runs of 4-outages: the model no longer shows the stall")
}

// outageScenarios are the outage model's scenarios; TestSimulator runs them with the others. The
// liveness bound is f+1 view timeouts: up to f leaders in a row may be down or cut off, each
// costing a view timeout, and one more lets a live leader's view finish.
func outageScenarios() []scenario {
	return []scenario{
		{name: "4-outages", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 10, drop: 0.02, dup: 0.1, maxDelay: 3,
			outage: &outagePlan{kills: 4, window: 400, downMin: 20, downMax: 150, repairMin: 10, repairMax: 60,
				maxGap: 2 * simViewTimeout, proposeDelay: 10, syncPoll: simSyncPoll, syncStuck: simSyncStuck},
			liveness: true, maxTicks: 4000, share: 50},
		{name: "7-outages-lossy", powers: []uint64{1, 1, 1, 1, 1, 1, 1}, observers: 1, heights: 10, drop: 0.1, dup: 0.1, maxDelay: 3,
			outage: &outagePlan{kills: 6, window: 400, downMin: 20, downMax: 150, repairMin: 10, repairMax: 60,
				maxGap: 3 * simViewTimeout, proposeDelay: 10, syncPoll: simSyncPoll, syncStuck: simSyncStuck},
			liveness: true, maxTicks: 4000, share: 100},
		// Victims wiped: they sign again, from nothing, what they signed before; only where the
		// height is decided already may it differ (see drain).
		{name: "4-outages-wipe", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 10, drop: 0.02, dup: 0.1, maxDelay: 3,
			outage: &outagePlan{kills: 4, window: 400, downMin: 20, downMax: 150, repairMin: 10, repairMax: 60, wipe: true,
				maxGap: 2 * simViewTimeout, proposeDelay: 10, syncPoll: simSyncPoll, syncStuck: simSyncStuck},
			liveness: true, maxTicks: 4000, share: 50},
		// The same with the node's leader schedule: a validator killed at its turn is passed over
		// afterwards, and comes back while others may be skipped in its place.
		{name: "4-outages-leaders", powers: []uint64{1, 1, 1, 1}, observers: 1, heights: 10, drop: 0.02, dup: 0.1, maxDelay: 3,
			outage: &outagePlan{kills: 4, window: 400, downMin: 20, downMax: 150, repairMin: 10, repairMax: 60,
				maxGap: 2 * simViewTimeout, proposeDelay: 10, syncPoll: simSyncPoll, syncStuck: simSyncStuck},
			liveness: true, maxTicks: 4000, share: 50, leaders: true},
	}
}

func isLiveness(err error) bool { return err != nil && strings.Contains(err.Error(), "liveness:") }

// outageSummary says where each node is, for a failure message.
func (s *sim) outageSummary() string {
	var b strings.Builder
	for i, nd := range s.nodes {
		if nd.out.down {
			fmt.Fprintf(&b, "[%d down since %d] ", i, nd.out.downAt)
			continue
		}
		st := nd.core.Status()
		fmt.Fprintf(&b, "[%d h=%d v=%d up@%d timer@%d idle=%d backoff=%d deaf-until=", i, st.Height, st.View, nd.out.upAt, nd.core.timer.at, nd.core.idle, nd.core.backoff)
		for j := range s.nodes {
			if u := s.out.brokenUntil[j][i]; u > s.now {
				fmt.Fprintf(&b, "%d:%d,", j, u)
			}
		}
		b.WriteString("] ")
	}
	return b.String()
}
