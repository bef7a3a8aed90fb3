package state

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/guild-ledger/guild/state/kv"
)

// govView is every governance query of s, as text.
func govView(t *testing.T, s *State) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "members %+v\n", must(s.Members()))
	fmt.Fprintf(&b, "params %+v\n", must(s.Params()))
	fmt.Fprintf(&b, "threshold %+v\n", must(s.Threshold()))
	fmt.Fprintf(&b, "upgrades %+v\n", must(s.Upgrades()))
	sets := func(vs ...ValidatorSetAt) {
		for _, set := range vs {
			fmt.Fprintf(&b, " from %d:", set.Height)
			for _, v := range set.Validators {
				fmt.Fprintf(&b, " %s=%d", v.Name, v.Power)
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("schedule")
	sets(must(s.ValidatorSchedule())...)
	for _, h := range []uint64{0, 1, 1000} {
		fmt.Fprintf(&b, "validators at %d", h)
		sets(must(s.ValidatorsAt(h)))
	}
	return b.String()
}

// TestGovMemoFollowsChanges: after every kind of change a block makes to governance (a
// parameter, a member, a validator set, an upgrade and its cancellation), the State that applied
// it, whose memo (govmemo.go) was read before each change, answers as a State opened afresh on
// the same store. A memo that never refreshed would still show genesis.
func TestGovMemoFollowsChanges(t *testing.T) {
	e := newOpEnv(t)
	a, b, r := e.alice, e.bob, e.erin
	propose := func(id string, p GovPropose) TxBody { p.ID = id; return TxBody{GovPropose: &p} }
	vote := func(id string) TxBody { return TxBody{GovVote: &GovVote{ID: id, Yes: true}} }
	fresh := func() string {
		s, err := Open(e.db, testChain)
		if err != nil {
			t.Fatal(err)
		}
		return govView(t, s)
	}
	upAt := e.s.Height() + 1 + MinUpgradeDelay + 20
	steps := []struct {
		name string
		id   string
		op   GovPropose
	}{
		{"param", "p1", GovPropose{SetParam: &Param{ParamViewTimeoutMs, 5000}}},
		{"member", "p2", GovPropose{AddMember: &Member{Name: "eon", Controller: r.addr}}},
		{"validator", "p3", GovPropose{SetValidator: &Validator{Name: "v0"}, EffectiveHeight: e.s.Height() + 10}},
		{"upgrade", "p4", GovPropose{Upgrade: &Upgrade{Name: "v2", Version: 2, Height: upAt}}},
		{"cancel upgrade", "p5", GovPropose{CancelUpgrade: "v2"}},
	}
	before := govView(t, e.s)
	if want := fresh(); before != want {
		t.Fatalf("at genesis:\n%s\nfresh:\n%s", before, want)
	}
	for _, st := range steps {
		e.t = t
		e.do(a, nil, propose(st.id, st.op))
		// Read between the proposal and the vote that passes it: the memo is warm.
		if got := govView(t, e.s); got != before {
			t.Fatalf("%s: governance changed before the proposal passed:\n%s\nwas:\n%s", st.name, got, before)
		}
		e.do(b, nil, vote(st.id)) // two of three members pass it (then two of four, with erin)
		if p := must(e.s.Proposal(st.id)); p.Status == ProposalOpen {
			e.do(e.dave, nil, vote(st.id))
		}
		if p := must(e.s.Proposal(st.id)); p.Status != ProposalPassed {
			t.Fatalf("%s: proposal %+v", st.name, p)
		}
		got := govView(t, e.s)
		if got == before {
			t.Fatalf("%s: governance reads as before the change:\n%s", st.name, got)
		}
		if want := fresh(); got != want {
			t.Fatalf("%s: the state that applied the change reads\n%s\na state opened afresh reads\n%s", st.name, got, want)
		}
		before = got
	}
}

// TestGovMemoCopies: what a query returns of the memo is the caller's to change.
func TestGovMemoCopies(t *testing.T) {
	e := newOpEnv(t)
	want := govView(t, e.s)
	must(e.s.Members())[0].Name = "x"
	must(e.s.Params())[0].Value = 1
	must(e.s.ValidatorSchedule())[0].Validators[0].Power = 99
	must(e.s.ValidatorsAt(1)).Validators[0].Power = 99
	if got := govView(t, e.s); got != want {
		t.Fatalf("changed through a query's result:\n%s\nwant\n%s", got, want)
	}
}

// readSpy records the keys a State reads from its store, and where its scans start.
type readSpy struct {
	kv.Store
	mu    sync.Mutex
	reads []string
}

func (r *readSpy) Get(k []byte) ([]byte, error) {
	r.mu.Lock()
	r.reads = append(r.reads, "get "+string(k))
	r.mu.Unlock()
	return r.Store.Get(k)
}

func (r *readSpy) Iterator(start, end []byte) (kv.Iterator, error) {
	r.mu.Lock()
	r.reads = append(r.reads, "scan "+string(start))
	r.mu.Unlock()
	return r.Store.Iterator(start, end)
}

func (r *readSpy) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reads
	r.reads = nil
	return out
}

// TestHeightStoreReads: a height of small blocks, as a node lives it (a block executed and
// committed, then the parameters, validator schedule and upgrades read), reads neither the
// governance record nor the validator sets nor the tree's root record from the store: the State
// has them in memory from the block before (issue #10: those reads were a tenth of a follower's
// CPU at 50 blocks a second). A block that passes a proposal makes the next reads go to the
// store, once.
func TestHeightStoreReads(t *testing.T) {
	e := newOpEnv(t)
	spy := &readSpy{Store: e.db}
	s, err := Open(spy, testChain)
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	height := func() []string {
		t.Helper()
		e.block(e.signOp(e.carol, TxBody{Transfer: &Transfer{To: e.erin.addr, Amount: 1}}))
		must(s.Params())
		must(s.ValidatorSchedule())
		must(s.Upgrades())
		must(s.ValidatorsAt(s.Height() + 1))
		var bad []string
		for _, r := range spy.take() {
			if strings.Contains(r, keyGov) || strings.Contains(r, recKey("vals")) || strings.HasPrefix(r, "get "+treePrefix+string(treeRootTag)) {
				bad = append(bad, fmt.Sprintf("%q", r))
			}
		}
		return bad
	}
	height() // the first reads fill the memo
	for range 3 {
		if bad := height(); len(bad) > 0 {
			t.Fatalf("block %d read %s from the store", s.Height(), strings.Join(bad, ", "))
		}
	}
	e.do(e.alice, nil, TxBody{GovPropose: &GovPropose{ID: "p1", SetParam: &Param{ParamViewTimeoutMs, 5000}}})
	e.do(e.bob, nil, TxBody{GovVote: &GovVote{ID: "p1", Yes: true}})
	spy.take()
	if bad := height(); len(bad) == 0 {
		t.Fatal("after a block that passed a proposal, governance was not read again")
	}
	if bad := height(); len(bad) > 0 {
		t.Fatalf("block %d read %s from the store", s.Height(), strings.Join(bad, ", "))
	}
}

// TestCheckVersionFromMemo: the version check that starts every block's execution reads the
// memo's decoded record, allocating nothing, rather than decoding the record again.
func TestCheckVersionFromMemo(t *testing.T) {
	e := newOpEnv(t)
	e.block() // the memo is filled
	ov := newOverlay(e.s, blockAt(e.s.Height()+1), 0)
	if err := ov.checkVersion(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := ov.checkVersion(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("checkVersion allocates %.0f times", n)
	}
}
