package consensus

import "fmt"

// Crash and replay (issue 3). The node handles a Ready as persist, send, store and apply the
// committed blocks, Advance (node/loop.go); a crash can fall between any two of those steps. A
// crash scenario picks one honest validator and crashes it, several times, at one chosen point of
// its Ready handling; it restarts from what it had made durable — its WAL (Config.Restore) and its
// stored blocks (Config.Recent, and the height after them) — exactly as node.Run does, and runs
// on. The simulator's invariants then cover all of its lives: nd.signed, kept across restarts,
// holds every digest it persisted, so it never signs two different ones for a (height, view,
// type); nothing it sends was not persisted first; and every node's chain agrees.

// crashPoint is where, in handling one Ready, the crash falls.
type crashPoint int

const (
	crashNone crashPoint = iota
	// crashBeforePersist: Ready returned signed messages, none of them durable yet. They never
	// left, so the restarted validator may sign something else for their slots (a leader's
	// fresh proposal, say); noteResigned counts how often it does.
	crashBeforePersist
	// crashBeforeSend: the WAL holds the messages, the network never saw them.
	crashBeforeSend
	// crashBeforeStore: the messages are sent; the blocks committed in this Ready are lost.
	crashBeforeStore
	// crashBeforeAdvance: the blocks are stored, but the node never applied them nor called
	// Advance (node.recover re-executes them on start).
	crashBeforeAdvance
)

func (p crashPoint) String() string {
	return [...]string{"none", "before-persist", "before-send", "before-store", "before-advance"}[p]
}

// crashesPerRun is how many times the victim crashes in one run.
const crashesPerRun = 3

// crashState is a run's crash plan and what came of it.
type crashState struct {
	victim int
	// skip is how many more Readies that reach the crash point the victim handles before the
	// next crash.
	skip int
	done int // crashes so far
	// lost holds the digests signed at a crashBeforePersist and lost with it.
	lost map[slotKey]Digest
}

// planCrashes picks the victim, an honest validator. Precondition: sc.crash is set.
func (s *sim) planCrashes() {
	n := len(s.sc.powers)
	v := s.rng.Intn(n)
	for s.faulty[v] {
		v = s.rng.Intn(n)
	}
	s.crashes = crashState{victim: v, skip: s.rng.Intn(4), lost: make(map[slotKey]Digest)}
}

// crashHere crashes node i at point if the plan says so and rd has something the crash would
// lose there; it then restarts the node from its durable state, and the caller drops rd.
func (s *sim) crashHere(i int, point crashPoint, rd *Ready) bool {
	cs := &s.crashes
	if s.sc.crash != point || i != cs.victim || cs.done >= crashesPerRun {
		return false
	}
	switch point {
	case crashBeforePersist, crashBeforeSend:
		if len(rd.Persist) == 0 {
			return false
		}
	case crashBeforeStore:
		if len(rd.Messages) == 0 && len(rd.Committed) == 0 {
			return false
		}
	case crashBeforeAdvance:
		if len(rd.Committed) == 0 {
			return false
		}
	}
	if cs.skip > 0 {
		cs.skip--
		return false
	}
	cs.done++
	cs.skip = s.rng.Intn(4)
	s.stats.crashes++
	if point == crashBeforePersist {
		for _, m := range rd.Persist {
			cs.lost[slotKey{m.Height, m.View, m.Type}] = m.Digest
		}
	}
	s.rebuild(i) // on failure s.err is set and drain stops
	return true
}

// noteResigned counts a slot that node i, after losing an unpersisted signature for it in a
// crash, signed again with a different digest: allowed, since the first never left the node,
// and the proof that the crash point was really exercised.
func (s *sim) noteResigned(i int, k slotKey, d Digest) {
	if s.sc.crash != crashBeforePersist || i != s.crashes.victim {
		return
	}
	if lost, ok := s.crashes.lost[k]; ok && lost != d {
		s.stats.resigned++
	}
	delete(s.crashes.lost, k)
}

// checkCrashes fails a crash run in which the victim never crashed: it would have tested nothing.
func (s *sim) checkCrashes() error {
	if s.sc.crash != crashNone && s.crashes.done == 0 {
		return fmt.Errorf("validator %d never reached the crash point %v", s.crashes.victim, s.sc.crash)
	}
	return nil
}
