package consensus

import (
	"errors"
	"fmt"
	"testing"
)

// vnet is a synchronous network of validators for view-change tests: crashed validators neither
// send nor receive, drop says which deliveries are lost, and time passes only through tick.
type vnet struct {
	t       *testing.T
	vals    ValidatorSet
	cores   []*Core
	apps    []*testApp
	crashed []bool
	drop    func(from, to int, m Message) bool
	decided [][]Committed
	wal     [][]Message
	queue   []routed
	from    []int
}

const testViewTimeout = 20

func newVnet(t *testing.T, n int) *vnet {
	t.Helper()
	nw := &vnet{t: t, vals: equalSet(n), crashed: make([]bool, n), decided: make([][]Committed, n), wal: make([][]Message, n)}
	for i := range n {
		app := &testApp{}
		c, err := New(Config{ChainID: testChain, Validators: nw.vals, App: app, Height: 1, Key: keyFor(i),
			RetransmitTicks: 5, ViewTimeoutTicks: testViewTimeout})
		if err != nil {
			t.Fatal(err)
		}
		nw.cores, nw.apps = append(nw.cores, c), append(nw.apps, app)
	}
	return nw
}

// settle handles Readies and delivers messages until nothing is left to do. Leaders propose
// "h=<h>;by=<i>;v=<view>" at once.
func (nw *vnet) settle() {
	nw.t.Helper()
	for progress := true; progress; {
		progress = false
		for i, c := range nw.cores {
			if nw.crashed[i] || !c.HasReady() {
				continue
			}
			progress = true
			rd := c.Ready()
			nw.wal[i] = append(nw.wal[i], rd.Persist...)
			for _, m := range rd.Messages {
				nw.queue = append(nw.queue, routed{to: -1, m: m})
				nw.from = append(nw.from, i)
			}
			for _, d := range rd.Committed {
				nw.apps[i].applied = d.Height
				nw.decided[i] = append(nw.decided[i], d)
			}
			if p := rd.Propose; p != nil {
				if err := c.Propose(p.Height, p.View, valueFor(p.Height, fmt.Sprintf("by=%d;v=%d", i, p.View))); err != nil {
					nw.t.Fatalf("core %d: Propose: %v", i, err)
				}
			}
			c.Advance()
		}
		for len(nw.queue) > 0 {
			progress = true
			m, from := nw.queue[0].m, nw.from[0]
			nw.queue, nw.from = nw.queue[1:], nw.from[1:]
			for j, peer := range nw.cores {
				if j == from || nw.crashed[j] || (nw.drop != nil && nw.drop(from, j, m)) {
					continue
				}
				err := peer.Step(m)
				if err != nil && !errors.Is(err, ErrStaleHeight) && !errors.Is(err, ErrDuplicate) && !errors.Is(err, ErrWrongView) {
					nw.t.Fatalf("core %d rejected %v h=%d v=%d from %d: %v", j, m.Type, m.Height, m.View, m.From, err)
				}
			}
		}
	}
}

// tick advances every live core by n ticks, settling after each.
func (nw *vnet) tick(n int) {
	for range n {
		for i, c := range nw.cores {
			if !nw.crashed[i] {
				c.Tick()
			}
		}
		nw.settle()
	}
}

// requireDecided checks that every live core decided height 1 with a value proposed in view,
// the same everywhere, and returns it.
func (nw *vnet) requireDecided(view uint64) []byte {
	nw.t.Helper()
	var value []byte
	for i := range nw.cores {
		if nw.crashed[i] {
			continue
		}
		if len(nw.decided[i]) == 0 {
			nw.t.Fatalf("core %d decided nothing; status %+v", i, nw.cores[i].Status())
		}
		d := nw.decided[i][0]
		if d.Certificate.View != view {
			nw.t.Fatalf("core %d decided in view %d, want %d", i, d.Certificate.View, view)
		}
		if err := VerifyCertificate(testChain, nw.vals, &d.Certificate); err != nil {
			nw.t.Fatal(err)
		}
		if value != nil && string(value) != string(d.Value) {
			nw.t.Fatalf("core %d decided %q, another %q", i, d.Value, value)
		}
		value = d.Value
	}
	return value
}

// The leader of height 1 (validator 1) is down: the others time out, move to view 1, whose
// leader (validator 2) asks its node for a value, and the height commits in view 1.
func TestViewChangeSilentLeader(t *testing.T) {
	nw := newVnet(t, 4)
	nw.crashed[1] = true
	nw.settle()
	nw.tick(testViewTimeout - 1)
	if nw.cores[0].Status().View != 0 {
		t.Fatalf("changed view before the timeout")
	}
	nw.tick(1)
	v := nw.requireDecided(1)
	if string(v) != string(valueFor(1, "by=2;v=1")) {
		t.Fatalf("decided %q, want view 1 leader's fresh value", v)
	}
	// Progress resets the timeout: heights 2 to 4, whose leaders are up, commit in view 0 at
	// once; height 5 is validator 1's again.
	for _, i := range []int{0, 2, 3} {
		if st := nw.cores[i].Status(); st.ViewChanges != 1 || st.Height != 5 || st.View != 0 {
			t.Fatalf("core %d status %+v, want height 5 view 0 after one view change", i, st)
		}
		for _, d := range nw.decided[i][1:] {
			if d.Certificate.View != 0 {
				t.Fatalf("core %d decided height %d in view %d", i, d.Height, d.Certificate.View)
			}
		}
	}
	nw.tick(testViewTimeout)
	if st := nw.cores[0].Status(); st.Height != 9 || st.ViewChanges != 2 {
		t.Fatalf("status %+v, want heights 5 to 8 decided after a second view change", st)
	}
}

// The leader's proposal V reaches a prepare quorum at validator 0 only and every commit is lost;
// then the leader crashes. V may have been committed as far as anyone knows, so view 1 must
// re-propose V, and does.
func TestViewChangeReproposesPrepared(t *testing.T) {
	nw := newVnet(t, 4)
	nw.drop = func(from, to int, m Message) bool {
		return m.View == 0 && (m.Type == MsgCommit || (m.Type == MsgPrepare && to != 0))
	}
	nw.settle()
	v := nw.cores[1].round.proposal.Value
	if nw.cores[0].prepared == nil || nw.cores[2].prepared != nil {
		t.Fatalf("setup: validator 0 should be the only one prepared")
	}
	nw.crashed[1] = true
	nw.tick(testViewTimeout)
	if got := nw.requireDecided(1); string(got) != string(v) {
		t.Fatalf("view 1 decided %q, want the prepared %q", got, v)
	}
}

// The leaders of view 0 and view 1 are both down (7 validators, f = 2): view 1 times out too,
// and view 2 commits. View 1's leader sent nothing at the height, so view 1 ends a quarter
// timeout after the others entered it (issue #9: a crashed leader is not silent for long enough
// yet, and waiting a whole timeout for it made two such leaders in a row cost two).
func TestViewChangeDuringViewChange(t *testing.T) {
	nw := newVnet(t, 7)
	nw.crashed[1], nw.crashed[2] = true, true // Leader(1, 0) and Leader(1, 1)
	nw.settle()
	nw.tick(testViewTimeout + testViewTimeout/4 - 1)
	if st := nw.cores[0].Status(); st.View != 1 || len(nw.decided[0]) != 0 {
		t.Fatalf("status %+v before view 1's timeout", st)
	}
	nw.tick(1)
	nw.requireDecided(2)
	if st := nw.cores[0].Status(); st.ViewChanges != 2 {
		t.Fatalf("status %+v, want two view changes", st)
	}
}

// One validator that timed out alone is not enough to drag the others along; a second one (more
// than a third of the power) is, and they join the smallest view asked for.
func TestJoinViewOnMoreThanAThird(t *testing.T) {
	vals := equalSet(4)
	c, _ := newCore(t, vals, 0, 1)
	wantErr(t, c.Step(viewChange(1, 3, 2, nil)))
	if c.Status().View != 0 {
		t.Fatalf("joined view on one view change")
	}
	wantErr(t, c.Step(viewChange(1, 2, 3, nil)))
	if st := c.Status(); st.View != 2 || st.ViewChanges != 1 {
		t.Fatalf("status %+v, want view 2", st)
	}
	rd := c.Ready()
	if len(rd.Persist) != 1 || rd.Persist[0].Type != MsgViewChange || rd.Persist[0].View != 2 {
		t.Fatalf("persisted %+v, want own view change for view 2", rd.Persist)
	}
}

// Messages for views beyond MaxFutureViews are refused and the buffer keeps one message per
// validator, type and view, however many a Byzantine validator sends.
func TestFutureViewsBounded(t *testing.T) {
	vals := equalSet(4)
	c, _ := newCore(t, vals, 0, 1)
	wantErr(t, c.Step(viewChange(1, MaxFutureViews+1, 3, nil)), ErrFutureView)
	wantErr(t, c.Step(viewChange(1, 1<<62, 3, nil)), ErrFutureView)
	for v := uint64(1); v <= MaxFutureViews; v++ {
		for k := range 5 {
			d := DigestOf(fmt.Appendf(nil, "%d", k))
			_ = c.Step(signed(MsgPrepare, 1, v, 3, nil, d))
			_ = c.Step(signed(MsgCommit, 1, v, 3, nil, d))
		}
		_ = c.Step(viewChange(1, v, 3, nil))
	}
	if got, want := c.views.size(), 3*MaxFutureViews; got != want {
		t.Fatalf("buffered %d messages, want %d", got, want)
	}
	// A pre-prepare for a later view only ever comes inside a new view.
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 1, 2, valueFor(1, "x"), Digest{})), ErrMalformed)
}

// preparedProof is a valid prepared certificate for value at (1, view), prepared by voters.
func preparedProof(vals ValidatorSet, view uint64, value []byte, voters ...int) *PreparedProof {
	pp := signed(MsgPrePrepare, 1, view, int(vals.Leader(1, view)), value, Digest{})
	p := &PreparedProof{PrePrepare: pp}
	for _, i := range voters {
		m := signed(MsgPrepare, 1, view, i, nil, pp.Digest)
		p.Prepares = append(p.Prepares, Vote{Validator: uint32(i), Sig: m.Sig})
	}
	return p
}

// viewChange is validator from's signed view change to view of height h, with proof if any.
func viewChange(h, view uint64, from int, proof *PreparedProof) Message {
	m := Message{Type: MsgViewChange, Height: h, View: view, From: uint32(from), Prepared: proof}
	if proof != nil {
		m.Digest, m.PreparedView = proof.PrePrepare.Digest, proof.PrePrepare.View
	}
	Sign(testChain, keyFor(from), &m)
	return m
}

// newView is the view-1 leader's (validator 2's) NewView for height 1 proposing value.
func newView(vcs []Message, value []byte) Message {
	pp := signed(MsgPrePrepare, 1, 1, 2, value, Digest{})
	m := Message{Type: MsgNewView, Height: 1, View: 1, From: 2, Digest: pp.Digest, ViewChanges: vcs, Proposal: &pp}
	Sign(testChain, keyFor(2), &m)
	return m
}

func TestNewViewValidation(t *testing.T) {
	vals := equalSet(4)
	prep := valueFor(1, "prepared")
	older := valueFor(1, "older") // a view-0 proposal that never prepared anywhere near a quorum
	fresh := valueFor(1, "fresh")
	proof := preparedProof(vals, 0, prep, 0, 1, 3)
	vc0, vc1, vc3 := viewChange(1, 1, 0, proof), viewChange(1, 1, 1, nil), viewChange(1, 1, 3, nil)
	forged := vc1
	forged.Sig = append([]byte(nil), vc1.Sig...)
	forged.Sig[0] ^= 1
	// A view change whose sender claims "nothing prepared" but whose signature covered a proof.
	stripped := vc0
	stripped.Prepared, stripped.Digest, stripped.PreparedView = nil, Digest{}, 0
	badProof := preparedProof(vals, 0, older, 0, 1) // two prepares: no quorum
	cases := []struct {
		name string
		m    Message
		want error
	}{
		{"re-proposes the prepared value", newView([]Message{vc0, vc1, vc3}, prep), nil},
		{"fresh value, nothing prepared", newView([]Message{vc1, viewChange(1, 1, 2, nil), vc3}, fresh), nil},
		{"ignores the prepared value", newView([]Message{vc0, vc1, vc3}, fresh), ErrInvalidValue},
		{"insufficient view changes", newView([]Message{vc1, vc3}, fresh), ErrNoQuorum},
		{"duplicate view change", newView([]Message{vc1, vc1, vc3}, fresh), ErrDuplicate},
		{"out of order", newView([]Message{vc3, vc1, viewChange(1, 1, 2, nil)}, fresh), ErrMalformed},
		{"forged view change", newView([]Message{vc0, forged, vc3}, prep), ErrBadSignature},
		{"stripped prepared certificate", newView([]Message{stripped, vc1, vc3}, fresh), ErrBadSignature},
		{"prepared certificate short of a quorum", newView([]Message{viewChange(1, 1, 0, badProof), vc1, vc3}, older), ErrMalformed},
		{"view change for another view", newView([]Message{viewChange(1, 2, 0, nil), vc1, vc3}, fresh), ErrMalformed},
		{"too many entries", newView([]Message{vc0, vc1, vc3, vc3, vc3}, prep), ErrDuplicate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyMessage(testChain, vals, &tc.m)
			if tc.want == nil {
				wantErr(t, err)
			} else {
				wantErr(t, err, tc.want)
			}
			// Through the codec and into a follower that is in view 1.
			b, err := EncodeMessage(&tc.m)
			if err != nil {
				t.Fatal(err)
			}
			m, err := DecodeMessage(b, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := newCore(t, vals, 0, 1)
			c.startViewChange(1, LeftByTimeout)
			c.Ready()
			c.Advance()
			err = c.Step(*m)
			if tc.want == nil {
				wantErr(t, err)
				rd := c.Ready()
				if len(rd.Persist) != 1 || rd.Persist[0].Type != MsgPrepare || rd.Persist[0].Digest != tc.m.Digest {
					t.Fatalf("after a valid new view, persisted %+v, want a prepare", rd.Persist)
				}
			} else {
				wantErr(t, err, tc.want)
				if c.HasReady() {
					t.Fatalf("acted on an invalid new view: %+v", c.Ready())
				}
			}
		})
	}
	// A NewView from a validator that does not lead view 1: well formed and signed, so
	// VerifyMessage (which knows no leader schedule) passes it, and the core refuses it.
	pp := signed(MsgPrePrepare, 1, 1, 3, prep, Digest{})
	m := Message{Type: MsgNewView, Height: 1, View: 1, From: 3, Digest: pp.Digest, ViewChanges: []Message{vc0, vc1, vc3}, Proposal: &pp}
	Sign(testChain, keyFor(3), &m)
	wantErr(t, VerifyMessage(testChain, vals, &m))
	c, _ := newCore(t, vals, 0, 1)
	c.startViewChange(1, LeftByTimeout)
	c.Ready()
	c.Advance()
	wantErr(t, c.Step(m), ErrNotLeader)
}

// A validator that signed a view change and restarted resumes in that view, resends the same view
// change, and never signs a different one for it, even though it prepared meanwhile.
func TestRestoredViewChange(t *testing.T) {
	vals := equalSet(4)
	c, _ := newCore(t, vals, 0, 1)
	c.Ready()
	c.Advance()
	for range DefaultViewTimeoutTicks {
		c.Tick()
	}
	rd := c.Ready()
	var vc *Message
	for i := range rd.Persist {
		if rd.Persist[i].Type == MsgViewChange {
			vc = &rd.Persist[i]
		}
	}
	if vc == nil || vc.View != 1 || vc.Prepared != nil {
		t.Fatalf("persisted %+v, want a view change to view 1 with nothing prepared", rd.Persist)
	}
	wal := rd.Persist

	c, err := restart(t, vals, 0, 1, wal)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); st.View != 1 {
		t.Fatalf("resumed in view %d, want 1", st.View)
	}
	rd = c.Ready()
	if len(rd.Persist) != 0 || len(rd.Messages) != 1 || string(rd.Messages[0].Sig) != string(vc.Sig) {
		t.Fatalf("first Ready after restart = %+v, want the restored view change resent", rd)
	}
	c.Advance()
	// A view-0 proposal is over for this validator.
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, valueFor(1, "late"), Digest{})), ErrWrongView)
	if c.HasReady() {
		t.Fatalf("signed in view 0 after restoring a view change: %+v", c.Ready())
	}
	// Joining view 1 again changes nothing; retransmission resends the same view change.
	for range 5 {
		c.Tick()
	}
	for _, m := range c.Ready().Persist {
		if m.Type == MsgViewChange && m.View == 1 {
			t.Fatalf("signed a second view change for view 1")
		}
	}
}

// A validator that prepared and committed V, then restarted, still carries V's prepared
// certificate into its view change: the WAL copy of its commit holds it.
func TestRestoredCommitKeepsPreparedCertificate(t *testing.T) {
	vals := equalSet(4)
	v := valueFor(1, "v")
	c, _ := newCore(t, vals, 0, 1) // validator 1 leads height 1
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, v, Digest{})))
	for _, from := range []int{1, 2} {
		wantErr(t, c.Step(signed(MsgPrepare, 1, 0, from, nil, DigestOf(v))))
	}
	rd := c.Ready()
	wal := rd.Persist
	if len(wal) != 2 || wal[1].Type != MsgCommit || wal[1].Prepared == nil {
		t.Fatalf("persisted %+v, want a prepare and a commit with its prepared certificate", wal)
	}
	for _, m := range rd.Messages {
		if m.Prepared != nil {
			t.Fatalf("sent a %v with the prepared certificate", m.Type)
		}
	}

	c, err := restart(t, vals, 0, 1, wal)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Ready().Messages {
		if m.Prepared != nil {
			t.Fatalf("resent a %v with the prepared certificate", m.Type)
		}
	}
	c.Advance()
	for range DefaultViewTimeoutTicks {
		c.Tick()
	}
	var vc *Message
	for _, m := range c.Ready().Messages {
		if m.Type == MsgViewChange {
			vc = &m
		}
	}
	if vc == nil || vc.Prepared == nil || vc.Digest != DigestOf(v) || vc.PreparedView != 0 {
		t.Fatalf("view change %+v, want one carrying v's prepared certificate", vc)
	}
	wantErr(t, VerifyMessage(testChain, vals, vc))

	// A WAL whose commit carries a certificate for another value is refused.
	bad := append([]Message(nil), wal...)
	bad[1].Prepared = preparedProof(vals, 0, valueFor(1, "other"), 0, 1, 2)
	if _, err := restart(t, vals, 0, 1, bad); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("restart with a mismatched certificate: %v", err)
	}
}

// A validator that timed out alone waits in view 1 (no timer runs without a quorum of view
// changes) rather than running ahead through views no one else is in.
func TestLoneViewChangeWaits(t *testing.T) {
	vals := equalSet(4)
	c, _ := newCore(t, vals, 0, 1)
	for range DefaultViewTimeoutTicks * 100 {
		c.Tick()
	}
	if st := c.Status(); st.View != 1 || st.ViewChanges != 1 {
		t.Fatalf("status %+v, want view 1 after timing out alone", st)
	}
	// Once a quorum is in view 1, view 1's timeout runs.
	wantErr(t, c.Step(viewChange(1, 1, 2, nil)))
	wantErr(t, c.Step(viewChange(1, 1, 3, nil)))
	for range 2 * DefaultViewTimeoutTicks {
		c.Tick()
	}
	if st := c.Status(); st.View != 2 {
		t.Fatalf("status %+v, want view 2 after view 1 timed out", st)
	}
}

// View changes beyond MaxFutureViews are not buffered, but more than a third of the power that far
// ahead still brings this node along.
func TestJoinFarView(t *testing.T) {
	vals := equalSet(4)
	c, _ := newCore(t, vals, 0, 1)
	far := uint64(MaxFutureViews + 10)
	wantErr(t, c.Step(viewChange(1, far, 2, nil)), ErrFutureView)
	wantErr(t, c.Step(viewChange(1, far+1, 3, nil)), ErrFutureView)
	if st := c.Status(); st.View != far {
		t.Fatalf("status %+v, want view %d", st, far)
	}
	if c.views.size() != 0 {
		t.Fatalf("buffered %d far messages", c.views.size())
	}
}

// A leader that sends two NewViews with different proposals is caught: the second is refused and
// the two pre-prepares are kept as evidence.
func TestEquivocatingNewView(t *testing.T) {
	vals := equalSet(4)
	vcs := []Message{viewChange(1, 1, 0, nil), viewChange(1, 1, 1, nil), viewChange(1, 1, 3, nil)}
	c, _ := newCore(t, vals, 0, 1)
	c.startViewChange(1, LeftByTimeout)
	wantErr(t, c.Step(newView(vcs, valueFor(1, "a"))))
	wantErr(t, c.Step(newView(vcs, valueFor(1, "a"))), ErrDuplicate)
	wantErr(t, c.Step(newView(vcs, valueFor(1, "b"))), ErrEquivocation)
	if len(c.evidence) != 1 || c.evidence[0].First.Type != MsgPrePrepare || c.evidence[0].First.Digest == c.evidence[0].Second.Digest {
		t.Fatalf("evidence %+v, want the two pre-prepares", c.evidence)
	}
}

// Validators spread over neighbouring views after lost view changes must not each wait for a
// quorum in their own view: support for a later view arms this view's timer. Here validator 1 is
// in view 2 with validator 2's view change (half the power), validator 0 has moved on to view 3
// alone (a quarter, too little to join), and validator 3 is silent.
func TestNeighbouringViewsDoNotStall(t *testing.T) {
	vals := equalSet(4)
	c, _ := newCore(t, vals, 1, 1)
	for range DefaultViewTimeoutTicks * 100 {
		c.Tick()
	}
	wantErr(t, c.Step(viewChange(1, 1, 0, nil)))
	wantErr(t, c.Step(viewChange(1, 1, 2, nil)))
	for range 2 * DefaultViewTimeoutTicks {
		c.Tick()
	}
	if st := c.Status(); st.View != 2 {
		t.Fatalf("status %+v, want view 2", st)
	}
	wantErr(t, c.Step(viewChange(1, 2, 2, nil)))
	wantErr(t, c.Step(viewChange(1, 3, 0, nil)))
	for range 8 * DefaultViewTimeoutTicks {
		c.Tick()
	}
	if st := c.Status(); st.View < 3 {
		t.Fatalf("status %+v: stuck in view 2 with half the power there and one validator in view 3", st)
	}
}

// timeoutCore is validator 0 of four at height 1 (led by 1; view 1 by 2, view 2 by 3), with a
// view timeout of testViewTimeout ticks.
func timeoutCore(t *testing.T) *Core {
	t.Helper()
	c, err := New(Config{ChainID: testChain, Validators: equalSet(4), App: &testApp{}, Height: 1, Key: keyFor(0),
		RetransmitTicks: 1000, ViewTimeoutTicks: testViewTimeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ticksToViewChange ticks c until it leaves its view and returns how many ticks that took; it
// steps keepAlive, if any, at every tick.
func ticksToViewChange(t *testing.T, c *Core, keepAlive ...Message) int {
	t.Helper()
	view := c.Status().View
	for n := 1; n <= 64*testViewTimeout; n++ {
		for _, m := range keepAlive {
			_ = c.Step(m)
		}
		c.Tick()
		if c.Status().View != view {
			return n
		}
	}
	t.Fatalf("still in view %d", view)
	return 0
}

// Issue #9: a view whose leader has sent nothing for two view timeouts (crashed, or cut off) ends
// after a quarter of the timeout; one whose leader was heard lately gets the whole timeout, and
// it is doubled only after a view whose leader proposed and still did not get the height decided.
func TestViewTimeoutAdapts(t *testing.T) {
	t.Run("silent leader", func(t *testing.T) {
		c := timeoutCore(t)
		// View 1's leader, 2, was at the height (see "silent leader, just entered" for one
		// that never was), then fell silent.
		wantErr(t, c.Step(signed(MsgPrepare, 1, 0, 2, nil, DigestOf(valueFor(1, "y")))))
		if got := ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 0 ended after %d ticks, want %d", got, testViewTimeout)
		}
		for range 2*testViewTimeout + 1 - testViewTimeout {
			c.Tick()
		}
		// A quorum for view 1 arms its timer; its leader, 2, has been silent since the start.
		wantErr(t, c.Step(viewChange(1, 1, 1, nil)))
		wantErr(t, c.Step(viewChange(1, 1, 3, nil)))
		if got := ticksToViewChange(t, c); got != testViewTimeout/4 {
			t.Fatalf("view 1, whose leader is silent, ended after %d ticks, want %d", got, testViewTimeout/4)
		}
	})
	t.Run("silent leader, just entered", func(t *testing.T) {
		// Silent since the start, and nothing from it at this height: a quarter timeout
		// after the core entered view 1, or at once when the quorum comes later than that.
		c := timeoutCore(t)
		ticksToViewChange(t, c)
		for range 2*testViewTimeout + 1 - testViewTimeout {
			c.Tick()
		}
		wantErr(t, c.Step(viewChange(1, 1, 1, nil)))
		wantErr(t, c.Step(viewChange(1, 1, 3, nil)))
		if got := ticksToViewChange(t, c); got != 1 {
			t.Fatalf("view 1, entered %d ticks ago, ended after %d more ticks, want 1", testViewTimeout+1, got)
		}
	})
	t.Run("leader heard lately", func(t *testing.T) {
		c := timeoutCore(t)
		ticksToViewChange(t, c)
		for range 2*testViewTimeout + 1 - testViewTimeout {
			c.Tick()
		}
		wantErr(t, c.Step(viewChange(1, 1, 2, nil))) // from view 1's leader
		wantErr(t, c.Step(viewChange(1, 1, 3, nil)))
		// View 0's leader never proposed: no doubling.
		if got := ticksToViewChange(t, c); got != testViewTimeout {
			t.Fatalf("view 1 ended after %d ticks, want %d", got, testViewTimeout)
		}
	})
	t.Run("doubled after a proposal, capped at 8x", func(t *testing.T) {
		c := timeoutCore(t)
		want := testViewTimeout
		for view := uint64(0); view < 6; view++ {
			// Keep the leader heard from, and proposing (without prepares, nothing is decided).
			var alive []Message
			if view == 0 {
				alive = append(alive, signed(MsgPrePrepare, 1, 0, int(c.round.leader), valueFor(1, "x"), Digest{}))
			} else {
				for _, from := range []int{1, 2, 3} {
					alive = append(alive, viewChange(1, view, from, nil))
				}
			}
			for _, m := range alive {
				_ = c.Step(m)
			}
			for c.HasReady() {
				rd := c.Ready()
				if rd.Propose != nil {
					wantErr(t, c.Propose(rd.Propose.Height, rd.Propose.View, valueFor(1, fmt.Sprintf("v=%d", view))))
				}
				c.Advance()
			}
			if view > 0 && c.round.proposal == nil {
				// A NewView from another leader is more than this test builds: count the leader
				// as having proposed through a restored proposal of its own instead.
				c.round.proposal = &Message{Type: MsgPrePrepare}
			}
			if got := ticksToViewChange(t, c, alive...); got != want {
				t.Fatalf("view %d ended after %d ticks, want %d", view, got, want)
			}
			want = min(2*want, 8*testViewTimeout)
		}
	})
}
