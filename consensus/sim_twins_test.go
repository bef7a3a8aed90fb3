package consensus

// Twins (Bano, Sonnino et al., "Twins: BFT Systems Made Robust", 2020): a faulty validator is
// modelled not by a message mutator but by running its key in two nodes at once, each an
// unmodified core with its own state. Each instance follows the protocol, yet together they
// propose two blocks for one slot, prepare and commit both, send two view changes: the
// equivocations a real attacker (or an operator who started a standby with the live key) would
// produce, without writing any of them by hand. A twinned key is one faulty validator: n = 4
// tolerates one, n = 7 two (two twinned keys, or one twinned and one silent).

// addTwins marks the Byzantine validator's node as faulty and appends a second node for each of
// sc.twins validators chosen at random, other than the Byzantine one; both instances of a
// twinned key are faulty. Precondition: the validator and observer nodes exist, s.byz is chosen.
func (s *sim) addTwins() {
	n := len(s.sc.powers)
	s.faulty = make([]bool, len(s.nodes))
	if s.byz >= 0 {
		s.faulty[s.byz] = true
	}
	for range s.sc.twins {
		v := s.rng.Intn(n)
		for s.faulty[v] {
			v = s.rng.Intn(n)
		}
		s.twins = append(s.twins, v)
		s.faulty[v] = true
		s.nodes = append(s.nodes, &simNode{app: &testApp{}, index: v, signed: make(map[slotKey]Digest)})
		s.faulty = append(s.faulty, true)
	}
}

// splitTwins partitions the network from cutFrom to cutTo with each twin's two instances on
// opposite sides and every other node on a random one, so that a side can gather a quorum with
// one instance's votes while the other side hears the other instance's. Like the Twins paper's
// per-round partitions, the sides are drawn again every few dozen ticks (see resplitTwins).
// Precondition: addTwins ran.
func (s *sim) splitTwins() {
	s.cutFrom = uint64(s.rng.Intn(20))
	s.cutTo = s.cutFrom + 1 + uint64(s.rng.Intn(s.sc.partition))
	s.nextSplit = s.cutFrom
}

// resplitTwins draws the partition's sides anew when it is time. Precondition: splitTwins ran.
func (s *sim) resplitTwins() {
	if !s.sc.twinSplit || s.now != s.nextSplit || s.now >= s.cutTo {
		return
	}
	s.nextSplit += 10 + uint64(s.rng.Intn(60))
	for i := range s.nodes {
		s.cut[i] = s.rng.Intn(2) == 0
	}
	first := len(s.nodes) - len(s.twins)
	for k, v := range s.twins {
		s.cut[v], s.cut[first+k] = false, true
	}
}
