package consensus

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"testing"
)

// cluster runs cores over a perfect, synchronous network: every message reaches every other core
// in order. Leaders propose "h=<h>;by=<index>" at once, up to height stop.
type cluster struct {
	t       testing.TB
	vals    ValidatorSet
	cores   []*Core
	apps    []*testApp
	decided [][]Committed
	stop    uint64
}

func newCluster(t testing.TB, vals ValidatorSet, observers int, stop uint64) *cluster {
	t.Helper()
	cl := &cluster{t: t, vals: vals, stop: stop}
	n := len(vals.Validators)
	for i := 0; i < n+observers; i++ {
		app := &testApp{}
		cfg := Config{ChainID: testChain, Validators: vals, App: app, Height: 1}
		if i < n {
			cfg.Key = keyFor(i)
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cl.cores = append(cl.cores, c)
		cl.apps = append(cl.apps, app)
		cl.decided = append(cl.decided, nil)
	}
	return cl
}

// run handles Readies and delivers messages until nothing is left to do.
func (cl *cluster) run() {
	cl.t.Helper()
	for progress := true; progress; {
		progress = false
		for i, c := range cl.cores {
			if !c.HasReady() {
				continue
			}
			progress = true
			rd := c.Ready()
			if c.Status().Self < 0 && (len(rd.Messages) > 0 || len(rd.Persist) > 0) {
				cl.t.Fatalf("observer %d emitted messages", i)
			}
			for _, m := range rd.Messages {
				for j, peer := range cl.cores {
					if j == i {
						continue
					}
					if err := peer.Step(m); err != nil && !errors.Is(err, ErrStaleHeight) && !errors.Is(err, ErrDuplicate) {
						cl.t.Fatalf("core %d rejected %v h=%d from %d: %v", j, m.Type, m.Height, m.From, err)
					}
				}
			}
			for _, d := range rd.Committed {
				cl.apps[i].applied = d.Height
				cl.decided[i] = append(cl.decided[i], d)
			}
			if p := rd.Propose; p != nil && p.Height <= cl.stop {
				if err := c.Propose(p.Height, p.View, valueFor(p.Height, fmt.Sprintf("by=%d", i))); err != nil {
					cl.t.Fatalf("core %d: Propose: %v", i, err)
				}
			}
			c.Advance()
		}
	}
}

func newCore(t *testing.T, vals ValidatorSet, self int, height uint64) (*Core, *testApp) {
	t.Helper()
	app := &testApp{applied: height - 1}
	cfg := Config{ChainID: testChain, Validators: vals, App: app, Height: height, RetransmitTicks: 5}
	if self >= 0 {
		cfg.Key = keyFor(self)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, app
}

func wantErr(t *testing.T, err error, want ...error) {
	t.Helper()
	if len(want) == 0 && err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("got error %v, want %v", err, w)
		}
	}
}

func TestNewValidatesConfig(t *testing.T) {
	good := func() Config {
		return Config{ChainID: testChain, Validators: equalSet(4), Key: keyFor(0), App: &testApp{}, Height: 1}
	}
	outsider := keyFor(10)
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"empty validator set", func(c *Config) { c.Validators = ValidatorSet{} }},
		{"zero power", func(c *Config) { c.Validators.Validators[2].Power = 0 }},
		{"total power overflows", func(c *Config) { c.Validators = testSet(1<<63, 1<<63, 1) }},
		{"short public key", func(c *Config) { c.Validators.Validators[1].PubKey = c.Validators.Validators[1].PubKey[:31] }},
		{"key twice in the set", func(c *Config) { c.Validators.Validators[1].PubKey = c.Validators.Validators[0].PubKey }},
		{"key not in the set", func(c *Config) { c.Key = outsider }},
		{"malformed key", func(c *Config) { c.Key = c.Key[:10] }},
		{"key whose public half is another's", func(c *Config) {
			c.Key = append(append(ed25519.PrivateKey(nil), outsider.Seed()...), c.Validators.Validators[0].PubKey...)
		}},
		{"no application", func(c *Config) { c.App = nil }},
		{"height zero", func(c *Config) { c.Height = 0 }},
		{"empty chain ID", func(c *Config) { c.ChainID = "" }},
		{"zero byte in chain ID", func(c *Config) { c.ChainID = "a\x00b" }},
		{"negative retransmit", func(c *Config) { c.RetransmitTicks = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.change(&cfg)
			_, err := New(cfg)
			wantErr(t, err, ErrInvalidConfig)
		})
	}
	c, err := New(good())
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); st != (Status{Height: 1, View: 0, Leader: 1, Self: 0}) {
		t.Errorf("Status = %+v", st)
	}
	obs := good()
	obs.Key = nil
	c, err = New(obs)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status().Self != -1 {
		t.Errorf("observer Self = %d", c.Status().Self)
	}
}

func TestNormalCaseFourNodes(t *testing.T) {
	cl := newCluster(t, equalSet(4), 1, 6)
	cl.run()
	for i := range cl.cores {
		if len(cl.decided[i]) != 6 {
			t.Fatalf("core %d decided %d heights, want 6", i, len(cl.decided[i]))
		}
		for k, d := range cl.decided[i] {
			h := uint64(k + 1)
			// The leader rotates: height h is proposed by validator h mod 4.
			if want := valueFor(h, fmt.Sprintf("by=%d", h%4)); d.Height != h || !bytes.Equal(d.Value, want) {
				t.Errorf("core %d height %d: decided %q at %d, want %q", i, h, d.Value, d.Height, want)
			}
			if err := VerifyCertificate(testChain, cl.vals, &d.Certificate); err != nil {
				t.Errorf("core %d height %d: %v", i, h, err)
			}
		}
		if st := cl.cores[i].Status(); st.Height != 7 || st.Leader != 3 {
			t.Errorf("core %d: Status %+v", i, st)
		}
	}
}

func TestSingleValidatorDecidesAlone(t *testing.T) {
	cl := newCluster(t, equalSet(1), 0, 3)
	cl.run()
	if len(cl.decided[0]) != 3 {
		t.Fatalf("decided %d heights, want 3", len(cl.decided[0]))
	}
}

func TestUnequalPowers(t *testing.T) {
	// Validators 0 and 1 hold 7 of 9: enough without the other two.
	vals := testSet(4, 3, 1, 1)
	cl := newCluster(t, vals, 0, 4)
	cl.cores, cl.apps, cl.decided = cl.cores[:2], cl.apps[:2], cl.decided[:2]
	cl.stop = 1 // height 1 is led by validator 1, height 2 by validator 2 (absent)
	cl.run()
	for i := range cl.cores {
		if len(cl.decided[i]) != 1 || len(cl.decided[i][0].Certificate.Votes) != 2 {
			t.Fatalf("core %d: decided %+v", i, cl.decided[i])
		}
	}
}

func TestPrePrepareFromNonLeaderRejected(t *testing.T) {
	c, _ := newCore(t, equalSet(4), 0, 1) // the leader of height 1 is validator 1
	err := c.Step(signed(MsgPrePrepare, 1, 0, 2, valueFor(1, "usurper"), Digest{}))
	wantErr(t, err, ErrNotLeader)
	err = c.Step(signed(MsgPrePrepare, 2, 0, 1, valueFor(2, "future usurper"), Digest{}))
	wantErr(t, err, ErrNotLeader)
	if c.HasReady() {
		t.Fatal("a rejected proposal produced output")
	}
}

func TestBadSignatureRejected(t *testing.T) {
	c, _ := newCore(t, equalSet(4), 0, 1)
	pp := signed(MsgPrePrepare, 1, 0, 1, valueFor(1, "x"), Digest{})
	pp.Sig[3] ^= 0x40
	wantErr(t, c.Step(pp), ErrBadSignature)

	impostor := signed(MsgPrepare, 1, 0, 2, nil, pp.Digest)
	impostor.From = 3 // validator 2's signature claiming to be validator 3
	wantErr(t, c.Step(impostor), ErrBadSignature)

	// A future message is verified before it is buffered.
	future := signed(MsgCommit, 2, 0, 2, nil, pp.Digest)
	future.Sig = nil
	wantErr(t, c.Step(future), ErrBadSignature)
	if c.future.size() != 0 || c.HasReady() {
		t.Fatal("a forged message left a trace")
	}
}

func TestDuplicateAndEquivocatingVotes(t *testing.T) {
	c, _ := newCore(t, equalSet(4), 0, 1)
	value := valueFor(1, "x")
	d := DigestOf(value)
	wantErr(t, c.Step(signed(MsgPrepare, 1, 0, 2, nil, d)))
	wantErr(t, c.Step(signed(MsgPrepare, 1, 0, 2, nil, d)), ErrDuplicate)
	wantErr(t, c.Step(signed(MsgPrepare, 1, 0, 2, nil, DigestOf([]byte("other")))), ErrEquivocation)
	wantErr(t, c.Step(signed(MsgPrepare, 1, 0, 2, nil, DigestOf([]byte("third")))), ErrEquivocation)
	if got := c.round.prepares.power[d]; got != 1 {
		t.Fatalf("validator 2 counts %d times", got)
	}
	rd0 := c.Ready()
	if len(rd0.Evidence) != 1 || rd0.Evidence[0].Slot() != (EvidenceSlot{Height: 1, Type: MsgPrepare, Validator: 2}) ||
		!slices.Contains([]Digest{rd0.Evidence[0].First.Digest, rd0.Evidence[0].Second.Digest}, d) {
		t.Fatalf("evidence = %+v, want the first conflicting pair only", rd0.Evidence)
	}
	if err := rd0.Evidence[0].Verify(testChain, &c.vals); err != nil {
		t.Fatalf("caught evidence does not verify: %v", err)
	}
	c.Advance()
	// Validator 1 (the leader) and 3 prepare too, and the leader's proposal arrives last: this
	// node sees the proposal prepared by 1, 2, 3 and itself and commits once.
	wantErr(t, c.Step(signed(MsgPrepare, 1, 0, 3, nil, d)))
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, value, Digest{})))
	rd := c.Ready()
	var types []MsgType
	for _, m := range rd.Persist {
		types = append(types, m.Type)
	}
	if fmt.Sprint(types) != fmt.Sprint([]MsgType{MsgPrepare, MsgCommit}) {
		t.Fatalf("signed %v, want prepare then commit", types)
	}
}

func TestUnknownValidatorRejected(t *testing.T) {
	c, _ := newCore(t, equalSet(4), 0, 1)
	m := signed(MsgPrepare, 1, 0, 2, nil, DigestOf([]byte("x")))
	m.From = 4
	wantErr(t, c.Step(m), ErrUnknownValidator)
	m.From = 1<<32 - 1
	wantErr(t, c.Step(m), ErrUnknownValidator)
}

func TestWrongHeightOrViewRejected(t *testing.T) {
	c, _ := newCore(t, equalSet(4), 0, 5) // deciding height 5
	d := DigestOf([]byte("x"))
	wantErr(t, c.Step(signed(MsgPrepare, 4, 0, 2, nil, d)), ErrStaleHeight)
	wantErr(t, c.Step(signed(MsgPrepare, 0, 0, 2, nil, d)), ErrStaleHeight)
	wantErr(t, c.Step(signed(MsgPrepare, 5+MaxFutureHeights+1, 0, 2, nil, d)), ErrFutureHeight)
	wantErr(t, c.Step(signed(MsgPrepare, 1<<63, 0, 2, nil, d)), ErrFutureHeight)
	wantErr(t, c.Step(signed(MsgPrepare, 5, MaxFutureViews, 2, nil, d))) // a later view: buffered
	wantErr(t, c.Step(signed(MsgPrepare, 5, 1+MaxFutureViews, 2, nil, d)), ErrFutureView)
	wantErr(t, c.Step(signed(MsgPrepare, 5, 1<<63, 2, nil, d)), ErrFutureView)
	wantErr(t, c.Step(signed(MsgPrepare, 6, 1, 2, nil, d)), ErrWrongView)
	wantErr(t, c.Step(signed(MsgPrepare, 5+MaxFutureHeights, 0, 2, nil, d))) // buffered
	v := valueFor(7, "x")
	far := DecisionMessage(1, Committed{Height: 7, Value: v, Certificate: certFor(7, 0, v, 0, 1, 2)})
	wantErr(t, c.Step(far), ErrFutureHeight) // decisions are buffered one height ahead only
	if c.future.size() != 1 {
		t.Fatalf("buffered %d messages, want 1", c.future.size())
	}
}

func TestObserverFollows(t *testing.T) {
	vals := equalSet(4)
	cl := newCluster(t, vals, 2, 4)
	cl.run()
	for i := 4; i < 6; i++ {
		if cl.cores[i].Status().Self != -1 {
			t.Fatalf("core %d is not an observer", i)
		}
		if len(cl.decided[i]) != 4 {
			t.Fatalf("observer %d decided %d heights, want 4", i, len(cl.decided[i]))
		}
		for k, d := range cl.decided[i] {
			if !bytes.Equal(d.Value, cl.decided[0][k].Value) {
				t.Fatalf("observer %d disagrees at height %d", i, k+1)
			}
		}
	}
	// Observers never sign, not even after a stall, and cannot propose.
	o := cl.cores[4]
	for range 100 {
		o.Tick()
	}
	if o.HasReady() {
		t.Fatalf("observer produced %+v", o.Ready())
	}
	wantErr(t, o.Propose(5, 0, valueFor(5, "x")), ErrNotLeader)
}

func TestEquivocatingLeader(t *testing.T) {
	c, _ := newCore(t, equalSet(4), 0, 1)
	a := signed(MsgPrePrepare, 1, 0, 1, valueFor(1, "a"), Digest{})
	b := signed(MsgPrePrepare, 1, 0, 1, valueFor(1, "b"), Digest{})
	wantErr(t, c.Step(a))
	wantErr(t, c.Step(a), ErrDuplicate)
	wantErr(t, c.Step(b), ErrEquivocation)
	rd := c.Ready()
	if want := NewEvidence(a, b); len(rd.Evidence) != 1 || rd.Evidence[0].ID() != want.ID() {
		t.Fatalf("evidence = %+v, want the two pre-prepares without their values", rd.Evidence)
	}
	if len(rd.Persist) != 1 || rd.Persist[0].Type != MsgPrepare || rd.Persist[0].Digest != a.Digest {
		t.Fatalf("signed %+v, want one prepare for the first proposal", rd.Persist)
	}
}

// A fresh value its leader signed that the application refuses proves the leader faulty: the
// core prepares nothing and leaves the view at once instead of waiting out its timeout.
func TestInvalidProposalRejected(t *testing.T) {
	c, _ := newCore(t, equalSet(4), 0, 1)
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, valueFor(2, "wrong height"), Digest{})), ErrInvalidValue, errWrongBlock)
	rd := c.Ready()
	if len(rd.Persist) != 1 || rd.Persist[0].Type != MsgViewChange || rd.Persist[0].View != 1 {
		t.Fatalf("after an invalid proposal signed %+v, want only a view change to view 1", rd.Persist)
	}
	c.Advance()
	if st := c.Status(); st.View != 1 {
		t.Fatalf("view %d after an invalid proposal, want 1", st.View)
	}
	// The view is gone: a second proposal for it is not taken.
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, valueFor(1, "ok"), Digest{})), ErrWrongView)
}

func TestProposeContract(t *testing.T) {
	vals := equalSet(4)
	leader, _ := newCore(t, vals, 1, 1)
	follower, _ := newCore(t, vals, 0, 1)
	rd := leader.Ready()
	if rd.Propose == nil || *rd.Propose != (ProposalRequest{Height: 1, View: 0}) {
		t.Fatalf("leader's first Ready = %+v", rd)
	}
	if follower.Ready().Propose != nil {
		t.Fatal("follower asked to propose")
	}
	leader.Advance()
	wantErr(t, follower.Propose(1, 0, valueFor(1, "x")), ErrNotLeader)
	wantErr(t, leader.Propose(2, 0, valueFor(2, "x")), ErrFutureHeight)
	wantErr(t, leader.Propose(0, 0, valueFor(0, "x")), ErrStaleHeight)
	wantErr(t, leader.Propose(1, 1, valueFor(1, "x")), ErrWrongView)
	wantErr(t, leader.Propose(1, 0, nil), ErrInvalidValue)
	wantErr(t, leader.Propose(1, 0, valueFor(2, "x")), ErrInvalidValue, errWrongBlock)
	value := valueFor(1, "x")
	wantErr(t, leader.Propose(1, 0, value))
	wantErr(t, leader.Propose(1, 0, valueFor(1, "y")), ErrDuplicate)
	rd = leader.Ready()
	if len(rd.Persist) != 2 || len(rd.Messages) != 2 {
		t.Fatalf("Ready = %+v, want pre-prepare and prepare, persisted and sent", rd)
	}
	for i, want := range []MsgType{MsgPrePrepare, MsgPrepare} {
		m := rd.Messages[i]
		if m.Type != want || m.Digest != DigestOf(value) || m.From != 1 || !bytes.Equal(m.Sig, rd.Persist[i].Sig) {
			t.Fatalf("message %d = %+v", i, m)
		}
		if err := VerifyMessage(testChain, vals, &m); err != nil {
			t.Fatal(err)
		}
	}
	if rd.Propose != nil {
		t.Fatal("still asking for a proposal")
	}
}

func TestOwnEchoIsDuplicate(t *testing.T) {
	c, _ := newCore(t, equalSet(4), 0, 1)
	value := valueFor(1, "x")
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, value, Digest{})))
	own := c.Ready().Persist[0]
	c.Advance()
	wantErr(t, c.Step(own), ErrDuplicate)
	wantErr(t, c.Step(signed(MsgPrepare, 1, 0, 0, nil, DigestOf([]byte("not mine")))), ErrEquivocation)
	wantErr(t, c.Step(signed(MsgCommit, 1, 0, 0, nil, DigestOf(value))), ErrDuplicate)
	if c.HasReady() || c.round.commits.power[DigestOf(value)] != 0 {
		t.Fatal("an echo was counted")
	}
}

// Step never panics, whatever it is fed: mutations of valid messages, seeded.
func TestStepNeverPanics(t *testing.T) {
	vals := equalSet(4)
	rng := rand.New(rand.NewSource(3))
	c, _ := newCore(t, vals, 0, 2)
	base := sampleMessages()
	for range 2000 {
		m := base[rng.Intn(len(base))]
		switch rng.Intn(9) {
		case 0:
			m.Type = MsgType(rng.Intn(256))
		case 1:
			m.From = rng.Uint32()
		case 2:
			m.Height = rng.Uint64() % 6
		case 3:
			m.View = uint64(rng.Intn(3))
		case 4:
			m.Value = nil
		case 5:
			m.Certificate = nil
		case 6:
			m.Certificate = &Certificate{Height: m.Height, Digest: m.Digest, Votes: []Vote{{Validator: rng.Uint32()}}}
		case 7:
			m.Sig = m.Sig[:rng.Intn(len(m.Sig)+1)]
		case 8:
			m.Digest[rng.Intn(32)]++
		}
		_ = c.Step(m)
		if rng.Intn(10) == 0 {
			c.Tick()
		}
		if c.HasReady() {
			c.Ready()
			c.Advance()
		}
	}
}

// BenchmarkDecideHeight is one height decided by four validators over a perfect network, with
// every signature made and verified for real (ed25519 dominates).
func BenchmarkDecideHeight(b *testing.B) {
	cl := newCluster(b, equalSet(4), 0, uint64(b.N))
	b.ResetTimer()
	cl.run()
	b.StopTimer()
	if len(cl.decided[0]) != b.N {
		b.Fatalf("decided %d heights, want %d", len(cl.decided[0]), b.N)
	}
}
