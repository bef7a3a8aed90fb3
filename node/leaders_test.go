package node

import (
	"errors"
	"slices"
	"testing"

	"github.com/guild-ledger/guild/consensus"
)

// ledBy fills in h's leader schedule as n computes it for the next height, with the scheduled
// leader as its proposer: the block an honest scheduled leader builds.
func ledBy(n *Node, h Header) Header {
	t := n.leadersAt(h.Height)
	h.Leader, h.Skips, h.Proposer = t.leader, t.skips, t.leader
	return h
}

func TestScheduleLeaders(t *testing.T) {
	const T = int64(1_000_000)
	first, max := leaderSkipFirst.Milliseconds(), leaderSkipMax.Milliseconds()
	four, seven := consensus.ValidatorSet{}, consensus.ValidatorSet{}
	for i := range 7 {
		v := consensus.Validator{PubKey: make([]byte, 32), Power: 1}
		v.PubKey[0] = byte(i)
		if i < 4 {
			four.Validators = append(four.Validators, v)
		}
		seven.Validators = append(seven.Validators, v)
	}
	tests := []struct {
		name        string
		height      uint64
		vals        consensus.ValidatorSet
		parent      *Header
		sameSet     bool
		wantSkips   []LeaderSkip
		wantSkipped []uint32
		wantLeader  uint32
		wantMissed  bool
		wantLed     bool
	}{
		{name: "first height is round-robin", height: 1, vals: four, wantLeader: 1},
		{name: "leader led: round-robin", height: 6, vals: four, sameSet: true,
			parent: &Header{Height: 5, Time: T, Leader: 1, Proposer: 1}, wantLeader: 2},
		{name: "leader missed: passed over from the next height", height: 6, vals: four, sameSet: true,
			parent:    &Header{Height: 5, Time: T, Leader: 1, Proposer: 2},
			wantSkips: []LeaderSkip{{Validator: 1, Until: T + first, Misses: 1}}, wantSkipped: []uint32{1}, wantLeader: 2, wantMissed: true},
		{name: "skipped validator's round-robin turn goes to the next", height: 5, vals: four, sameSet: true,
			parent:    &Header{Height: 4, Time: T, Leader: 0, Proposer: 0, Skips: []LeaderSkip{{Validator: 1, Until: T + 1, Misses: 1}}},
			wantSkips: []LeaderSkip{{Validator: 1, Until: T + 1, Misses: 1}}, wantSkipped: []uint32{1}, wantLeader: 2},
		{name: "expired skip: given its turn back, kept on probation", height: 5, vals: four, sameSet: true,
			parent:    &Header{Height: 4, Time: T, Leader: 0, Proposer: 0, Skips: []LeaderSkip{{Validator: 1, Until: T, Misses: 1}}},
			wantSkips: []LeaderSkip{{Validator: 1, Until: T, Misses: 1}}, wantLeader: 1},
		{name: "on probation and missed again: twice as long", height: 6, vals: four, sameSet: true,
			parent:    &Header{Height: 5, Time: T, Leader: 1, Proposer: 2, Skips: []LeaderSkip{{Validator: 1, Until: T - 5, Misses: 1}}},
			wantSkips: []LeaderSkip{{Validator: 1, Until: T + 2*first, Misses: 2}}, wantSkipped: []uint32{1}, wantLeader: 2, wantMissed: true},
		{name: "many misses: capped", height: 6, vals: four, sameSet: true,
			parent:    &Header{Height: 5, Time: T, Leader: 1, Proposer: 2, Skips: []LeaderSkip{{Validator: 1, Until: T - 5, Misses: 40}}},
			wantSkips: []LeaderSkip{{Validator: 1, Until: T + max, Misses: 41}}, wantSkipped: []uint32{1}, wantLeader: 2, wantMissed: true},
		{name: "on probation and led: forgiven", height: 6, vals: four, sameSet: true,
			parent:    &Header{Height: 5, Time: T, Leader: 1, Proposer: 1, Skips: []LeaderSkip{{Validator: 1, Until: T - 5, Misses: 3}, {Validator: 3, Until: T + 9, Misses: 1}}},
			wantSkips: []LeaderSkip{{Validator: 3, Until: T + 9, Misses: 1}}, wantSkipped: []uint32{3}, wantLeader: 2, wantLed: true},
		{name: "at most f of 4 passed over: the latest skip", height: 6, vals: four, sameSet: true,
			parent:    &Header{Height: 5, Time: T, Leader: 1, Proposer: 2, Skips: []LeaderSkip{{Validator: 2, Until: T + 9, Misses: 1}}},
			wantSkips: []LeaderSkip{{Validator: 1, Until: T + first, Misses: 1}, {Validator: 2, Until: T + 9, Misses: 1}}, wantSkipped: []uint32{1}, wantLeader: 2, wantMissed: true},
		{name: "at most f of 4: the latest miss, not the longest skip", height: 6, vals: four, sameSet: true,
			// Validator 2 missed twice, a while ago (skipped 2 min, 90 s of it left): it has
			// likely been back since; validator 1 missed just now.
			parent:    &Header{Height: 5, Time: T, Leader: 1, Proposer: 2, Skips: []LeaderSkip{{Validator: 2, Until: T + 90_000, Misses: 2}}},
			wantSkips: []LeaderSkip{{Validator: 1, Until: T + first, Misses: 1}, {Validator: 2, Until: T + 90_000, Misses: 2}}, wantSkipped: []uint32{1}, wantLeader: 2, wantMissed: true},
		{name: "f of 7 is two", height: 8, vals: seven, sameSet: true,
			parent:    &Header{Height: 7, Time: T, Leader: 0, Proposer: 2, Skips: []LeaderSkip{{Validator: 1, Until: T + 9, Misses: 1}, {Validator: 5, Until: T + 8, Misses: 1}}},
			wantSkips: []LeaderSkip{{Validator: 0, Until: T + first, Misses: 1}, {Validator: 1, Until: T + 9, Misses: 1}, {Validator: 5, Until: T + 8, Misses: 1}}, wantSkipped: []uint32{0, 1}, wantLeader: 2, wantMissed: true},
		{name: "validator set changed: table reset", height: 6, vals: four, sameSet: false,
			parent: &Header{Height: 5, Time: T, Leader: 1, Proposer: 2, Skips: []LeaderSkip{{Validator: 3, Until: T + 9, Misses: 1}}}, wantLeader: 2},
		{name: "indexes beyond the set dropped", height: 6, vals: four, sameSet: true,
			parent: &Header{Height: 5, Time: T, Leader: 9, Proposer: 2, Skips: []LeaderSkip{{Validator: 6, Until: T + 9, Misses: 1}}}, wantLeader: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt := T
			if tc.parent == nil {
				pt = 0
			}
			got := scheduleLeaders(tc.height, tc.vals, tc.parent, pt, tc.sameSet)
			if !slices.Equal(got.skips, tc.wantSkips) || !slices.Equal(got.skipped, tc.wantSkipped) || got.leader != tc.wantLeader {
				t.Fatalf("skips %+v skipped %v leader %d; want %+v %v %d", got.skips, got.skipped, got.leader, tc.wantSkips, tc.wantSkipped, tc.wantLeader)
			}
			if (got.missed != nil) != tc.wantMissed || got.led != tc.wantLed {
				t.Fatalf("missed %v led %v; want %v %v", got.missed, got.led, tc.wantMissed, tc.wantLed)
			}
		})
	}
}

// missChain grows blocks 1..blocks on n, 10 s of block time apart, each built by its scheduled
// leader except at the heights in missed, where the leader of view 1 built it.
func missChain(t *testing.T, c *syncChain, n *Node, blocks uint64, missed ...uint64) {
	t.Helper()
	for h := n.blocks.Height() + 1; h <= blocks; h++ {
		hd := ledBy(n, Header{ChainID: c.gen.ChainID, Height: h, Time: n.lastTime + 10_000, PrevHash: n.lastHash,
			StateRoot: n.st.Root(), TxsHash: TxsHash(nil)})
		if slices.Contains(missed, h) {
			hd.Proposer = n.validatorsAt(h).LeaderOf(h, 1, n.leadersAt(h).skipped)
		}
		value, err := (&Block{Header: hd, Txs: [][]byte{}}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := n.CheckProposal(h, value); err != nil {
			t.Fatalf("block %d: %v", h, err)
		}
		cert := certify(c.gen.ChainID, c.valKeys[:3], h, consensus.DigestOf(value))
		if err := n.commit(consensus.Committed{Height: h, Value: value, Certificate: cert}); err != nil {
			t.Fatal(err)
		}
	}
}

// A validator that missed its turn is passed over at its next turns, the next block must say
// so, and CheckProposal refuses a block that names another scheduled leader or skip table.
func TestCheckProposalChecksLeaderSchedule(t *testing.T) {
	c := newSyncChain(t)
	n, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.closeStores()
	missChain(t, c, n, 5, 2) // validator 2 missed height 2
	turn := n.leadersAt(6)
	if turn.leader != 3 || !slices.Equal(turn.skipped, []uint32{2}) {
		t.Fatalf("height 6 (round-robin: 2): leader %d, skipped %v; want 3, [2]", turn.leader, turn.skipped)
	}
	block := func(mod func(*Header)) []byte {
		h := ledBy(n, Header{ChainID: c.gen.ChainID, Height: 6, Time: n.lastTime + 1, PrevHash: n.lastHash,
			StateRoot: n.st.Root(), TxsHash: TxsHash(nil)})
		mod(&h)
		v, err := (&Block{Header: h, Txs: [][]byte{}}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for name, mod := range map[string]func(*Header){
		"round-robin leader":  func(h *Header) { h.Leader = 2 },
		"no skips":            func(h *Header) { h.Skips = nil },
		"skip shortened":      func(h *Header) { h.Skips = []LeaderSkip{{Validator: 2, Until: h.Skips[0].Until - 1, Misses: 1}} },
		"another one skipped": func(h *Header) { h.Skips = append(h.Skips, LeaderSkip{Validator: 3, Until: h.Time, Misses: 1}) },
	} {
		if err := n.CheckProposal(6, block(mod)); !errors.Is(err, ErrBadBlock) {
			t.Errorf("%s: %v, want ErrBadBlock", name, err)
		}
	}
	if err := n.CheckProposal(6, block(func(*Header) {})); err != nil {
		t.Fatalf("the scheduled block: %v", err)
	}
	if v := counterValue(t, n, "guild_consensus_leader_skips_total", ""); v != 1 {
		t.Errorf("guild_consensus_leader_skips_total = %v, want 1", v)
	}
	if v := gaugeValue(t, n, "guild_consensus_leaders_skipped"); v != 1 {
		t.Errorf("guild_consensus_leaders_skipped = %v, want 1", v)
	}
	if p := n.skippedNow.Load(); p == nil || !slices.Equal(*p, []uint32{2}) {
		t.Errorf("skipped for the API: %v, want [2]", p)
	}

	// A minute of block time after its miss, validator 2 leads its turn again and is forgiven.
	missChain(t, c, n, 9)
	if turn := n.leadersAt(10); turn.leader != 2 || len(turn.skipped) != 0 || len(turn.skips) != 1 {
		t.Fatalf("height 10: leader %d, skipped %v, skips %+v; want 2 on probation", turn.leader, turn.skipped, turn.skips)
	}
	missChain(t, c, n, 10)
	if turn := n.leadersAt(11); len(turn.skips) != 0 || !turn.led {
		t.Fatalf("height 11: skips %+v, led %v; want none, led", turn.skips, turn.led)
	}
}

// The schedule follows from the last stored header: a restarted node, and one that synced the
// chain block by block, compute the same one as the node that built it.
func TestLeaderScheduleAfterRestartAndSync(t *testing.T) {
	c := newSyncChain(t)
	home := c.home(t)
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Storage.Backend = "goleveldb" // survives the restart
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	n, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	missChain(t, c, n, 14, 3, 9, 13)
	want := n.leadersAt(15)
	if len(want.skipped) == 0 {
		t.Fatalf("height 15 skips nobody (%+v): the test shows nothing", want)
	}
	n.closeStores()

	again, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.closeStores()
	got := again.leadersAt(15)
	if got.leader != want.leader || !slices.Equal(got.skips, want.skips) || !slices.Equal(got.skipped, want.skipped) {
		t.Fatalf("after a restart: %+v, before: %+v", got, want)
	}

	synced, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer synced.closeStores()
	var batch []syncedBlock
	for h := uint64(1); h <= 14; h++ {
		value, cert, err := again.blocks.Block(h)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, syncedBlock{height: h, value: value, cert: *cert, vals: c.gen.ValidatorSet()})
	}
	if applied, local, fatal := synced.applySynced(batch); applied != 14 || local != nil || fatal != nil {
		t.Fatalf("sync applied %d: %v %v", applied, local, fatal)
	}
	got = synced.leadersAt(15)
	if got.leader != want.leader || !slices.Equal(got.skips, want.skips) || !slices.Equal(got.skipped, want.skipped) {
		t.Fatalf("after sync: %+v, want %+v", got, want)
	}
}

func gaugeValue(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	mfs, err := n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}
