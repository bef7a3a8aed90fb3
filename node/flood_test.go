package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
)

// signedMessage is a message of validator 0 (the solo node's own key), encoded for gossip.
func signedMessage(t *testing.T, n *Node, typ consensus.MsgType, height, view uint64) []byte {
	t.Helper()
	m := consensus.Message{Type: typ, Height: height, View: view, From: 0}
	if typ != consensus.MsgViewChange {
		m.Digest = consensus.DigestOf([]byte("a block"))
	}
	consensus.Sign(n.chainID, n.valKey, &m)
	raw, err := consensus.EncodeMessage(&m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Messages for heights or views far from the node's are ignored before their signature is
// checked; what a lagging or leading honest peer needs (nearby heights, decisions of recent
// heights, view changes however far ahead) still goes in.
func TestConsensusAdmissionWindow(t *testing.T) {
	n := soloNodeAtRest(t)
	n.snapshot.Store(&consensus.Status{Height: 10, View: 2})
	farViewChanges := 0
	for _, c := range []struct {
		typ          consensus.MsgType
		height, view uint64
		dropped      string // "" when admitted
	}{
		{consensus.MsgPrepare, 10, 2, ""},
		{consensus.MsgPrepare, 10, 2 + futureViewWindow, ""},
		{consensus.MsgPrepare, 10, 3 + futureViewWindow, "far-future view"},
		{consensus.MsgCommit, 10, 1000, "far-future view"},
		{consensus.MsgViewChange, 10, 1000, ""}, // the core may need to join validators that far ahead
		{consensus.MsgPrepare, 10 + futureHeightWindow, 0, ""},
		{consensus.MsgPrepare, 11 + futureHeightWindow, 0, "far-future height"},
		{consensus.MsgViewChange, 1 << 40, 1, "far-future height"},
		{consensus.MsgPrepare, 11, 1, ""},
		{consensus.MsgPrepare, 12, 1, "future height, later view"},
		{consensus.MsgCommit, 10 - staleHeightWindow, 0, ""}, // the core answers it with a decision
		{consensus.MsgCommit, 9 - staleHeightWindow, 0, "long-decided height"},
	} {
		name := fmt.Sprintf("%v h%d v%d", c.typ, c.height, c.view)
		var before float64
		if c.dropped != "" {
			before = counterValue(t, n, "guild_consensus_out_of_window_total", c.dropped)
		}
		if c.typ == consensus.MsgViewChange && c.height == 10 && c.view > 2+futureViewWindow {
			farViewChanges++
		}
		v, _ := n.validateConsensus("another-peer", signedMessage(t, n, c.typ, c.height, c.view))
		switch {
		case c.dropped == "" && !admits(v):
			t.Errorf("%s: verdict %v, want Accept", name, v)
		case c.dropped != "" && v != p2p.Ignore:
			t.Errorf("%s: verdict %v, want Ignore", name, v)
		case c.dropped != "" && counterValue(t, n, "guild_consensus_out_of_window_total", c.dropped) != before+1:
			t.Errorf("%s: not counted as %q", name, c.dropped)
		}
	}
	// View changes for ever higher views: a burst of 2 s worth per author, then the rate.
	admitted := farViewChanges
	for view := uint64(2000); view < 2100; view++ {
		if v, _ := n.validateConsensus("another-peer", signedMessage(t, n, consensus.MsgViewChange, 10, view)); admits(v) {
			admitted++
		}
	}
	if limit := 2*farViewChangesPerSec + 1; admitted < 2*farViewChangesPerSec || admitted > limit {
		t.Fatalf("%d of 100 far-future view changes admitted from one author, want about %d", admitted, limit)
	}
	if v, _ := n.validateConsensus("yet-another-peer", signedMessage(t, n, consensus.MsgViewChange, 10, 3000)); !admits(v) {
		t.Fatalf("another author's far-future view change: %v, want Accept", v)
	}
}

func TestOffenceClassification(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("consensus detail: %w", err) }
	prepare := &consensus.Message{Type: consensus.MsgPrepare, Height: 5}
	decision := &consensus.Message{Type: consensus.MsgDecision, Height: 5}
	later := &consensus.Message{Type: consensus.MsgPrePrepare, Height: 6}
	for _, c := range []struct {
		err  error
		m    *consensus.Message
		want string
	}{
		{consensus.ErrStaleHeight, prepare, ""},
		{consensus.ErrFutureHeight, prepare, ""},
		{consensus.ErrDuplicate, prepare, ""},
		{consensus.ErrWrongView, prepare, ""},
		{consensus.ErrFutureView, prepare, ""},
		{consensus.ErrMalformed, prepare, "malformed"},
		{consensus.ErrMalformed, later, "malformed"},
		{consensus.ErrEquivocation, later, "equivocation"},
		{consensus.ErrNotLeader, prepare, "not the leader"},
		{consensus.ErrNotLeader, later, ""}, // a later height's leader may depend on blocks not applied yet
		{consensus.ErrInvalidValue, prepare, "invalid value"},
		{consensus.ErrInvalidValue, decision, ""}, // a quorum certified it: this node is the odd one
		{fmt.Errorf("%w: %w", consensus.ErrInvalidCertificate, consensus.ErrDuplicate), prepare, "invalid certificate"},
		{consensus.ErrNoQuorum, later, ""},
	} {
		got, ok := offence(wrap(c.err), c.m, 5)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%v for %v at height %d: %q %v, want %q", c.err, c.m.Type, c.m.Height, got, ok, c.want)
		}
	}
}

// A correctly signed message the core refuses as invalid costs the node of the validator that
// signed it (not the peer that passed it on) gossip score, until that node is disconnected; a
// stale one costs nothing.
func TestInvalidMessagesPenaliseTheSigner(t *testing.T) {
	n := soloNodeAtRest(t)
	if err := n.startCore(nil); err != nil {
		t.Fatal(err)
	}
	newHost := func(key ed25519.PrivateKey, bootstrap []string) *p2p.Host {
		h, err := p2p.New(context.Background(), p2p.Config{
			Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: bootstrap, ChainID: n.chainID,
			ValidateTxs:       func(string, []byte) (p2p.Verdict, any) { return p2p.Accept, nil },
			ValidateConsensus: func(string, []byte) (p2p.Verdict, any) { return p2p.Accept, nil },
			Logger:            slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		return h
	}
	n.host = newHost(n.nodeKey, nil)
	_, xKey, _ := ed25519.GenerateKey(rand.Reader)
	x := newHost(xKey, n.host.Addrs())
	_, relayKey, _ := ed25519.GenerateKey(rand.Reader)
	relay := newHost(relayKey, n.host.Addrs())
	// Validator 0 is now bound to x's node.
	s := *n.sched.Load()
	s.epochs = append([]epoch(nil), s.epochs...)
	s.epochs[0].Names, s.epochs[0].Peers = []string{"x-org"}, []string{x.ID()}
	n.sched.Store(&s)

	score := func(id string) (float64, bool) {
		for _, p := range n.host.Peers() {
			if p.ID == id {
				return p.Score, p.HasScore
			}
		}
		return 0, false
	}
	deadline := time.After(20 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			case <-poll.C:
			}
		}
	}
	waitFor("scores of x and the relayer", func() bool {
		_, okX := score(x.ID())
		_, okR := score(relay.ID())
		return okX && okR
	})

	height := n.core.Status().Height
	m := &consensus.Message{Type: consensus.MsgPrePrepare, Height: height, From: 0}
	for range 100 {
		n.noteRefused(relay.ID(), m, fmt.Errorf("%w: for height %d", consensus.ErrStaleHeight, height))
	}
	refuse := fmt.Errorf("%w: validator 0 does not lead", consensus.ErrNotLeader)
	n.noteRefused(relay.ID(), m, refuse)
	// One offence's worth, not a hundred and one.
	waitFor("x's score to reflect one offence", func() bool {
		s, _ := score(x.ID())
		return s < 0
	})
	if s, _ := score(x.ID()); s < -2*invalidMessagePenalty {
		t.Fatalf("x's score %v after one offence and 100 stale messages", s)
	}
	if s, _ := score(relay.ID()); s < 0 {
		t.Fatalf("the relayer's score fell to %v", s)
	}
	if got := counterValue(t, n, "guild_consensus_invalid_messages_total", "x-org"); got != 1 {
		t.Fatalf("invalid messages of x-org counted %v, want 1", got)
	}
	for range 50 {
		n.noteRefused(relay.ID(), m, refuse)
	}
	waitFor("x to be disconnected", func() bool { return n.host.ScoreDisconnects() == 1 })
	if _, ok := score(relay.ID()); !ok {
		t.Fatal("the relayer was disconnected too")
	}
	if r := n.offences["x-org"]; r == nil || r.count != 50 || r.reason != "not the leader" {
		t.Fatalf("offence record %+v: want 50 since the first was logged", r)
	}
}

// The flood inspector's author of a consensus payload is the node of the validator whose index
// it carries; a decision, evidence or garbage names none.
func TestConsensusAuthorNamesTheSignersNode(t *testing.T) {
	n, _, _ := startSolo(t)
	enc := func(m consensus.Message) []byte {
		b, err := consensus.EncodeMessage(&m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	id, ok := n.consensusAuthor(enc(consensus.Message{Type: consensus.MsgPrepare, Height: 1, From: 0}))
	if !ok || id.String() != n.peerID {
		t.Fatalf("author of validator 0's prepare: %q %v, want this node %s", id, ok, n.peerID)
	}
	for name, data := range map[string][]byte{
		"decision":      enc(consensus.Message{Type: consensus.MsgDecision, Height: 1}),
		"unknown index": enc(consensus.Message{Type: consensus.MsgPrepare, Height: 1, From: 7}),
		"garbage":       []byte("not cbor"),
	} {
		if id, ok := n.consensusAuthor(data); ok {
			t.Errorf("%s: author %s, want none", name, id)
		}
	}
}

// consensusStale peeks at a payload's height and calls long decided exactly what outsideWindow
// would: those are then ignored before their sender's rate bucket is charged.
func TestConsensusStaleMatchesTheWindow(t *testing.T) {
	n := soloNodeAtRest(t)
	n.snapshot.Store(&consensus.Status{Height: 10, View: 2})
	for _, c := range []struct {
		typ    consensus.MsgType
		height uint64
		stale  bool
	}{
		{consensus.MsgCommit, 10, false},
		{consensus.MsgCommit, 10 - staleHeightWindow, false}, // the core answers it with a decision
		{consensus.MsgCommit, 9 - staleHeightWindow, true},
		{consensus.MsgPrePrepare, 1, true},
		{consensus.MsgViewChange, 2, true},
		{consensus.MsgPrepare, 1 << 40, false}, // far ahead: the window check (and block sync) see it
	} {
		raw := signedMessage(t, n, c.typ, c.height, 0)
		before := counterValue(t, n, "guild_consensus_out_of_window_total", "long-decided height")
		if got := n.consensusStale(raw); got != c.stale {
			t.Errorf("%v at height %d: stale %v, want %v", c.typ, c.height, got, c.stale)
		}
		counted := counterValue(t, n, "guild_consensus_out_of_window_total", "long-decided height") - before
		if want := map[bool]float64{true: 1, false: 0}[c.stale]; counted != want {
			t.Errorf("%v at height %d: counted %v, want %v", c.typ, c.height, counted, want)
		}
		if !c.stale {
			continue
		}
		// The peek agrees with the full check.
		if v, _ := n.validateConsensus("another-peer", raw); v != p2p.Ignore {
			t.Errorf("%v at height %d: validateConsensus %v, want Ignore", c.typ, c.height, v)
		}
	}
	for name, data := range map[string][]byte{"garbage": []byte("not cbor"), "empty": nil} {
		if n.consensusStale(data) {
			t.Errorf("%s: stale, want false (the validator refuses it, and charges its sender)", name)
		}
	}
}

// Only a copy from its author's own peer says the author is alive or lags (markRelayed): one a
// hostile peer replays is marked relayed before the core sees it.
func TestMarkRelayedTrustsOnlyTheAuthorsPeer(t *testing.T) {
	n := soloNodeAtRest(t)
	author := n.sched.Load().at(1).Peers[0]
	if author == "" {
		t.Fatal("validator 0 is bound to no peer")
	}
	for _, c := range []struct {
		name    string
		from    string
		m       consensus.Message
		relayed bool
	}{
		{"from its author", author, consensus.Message{Type: consensus.MsgPrepare, Height: 1, From: 0}, false},
		{"from another peer", "12D3KooWsomeoneelse", consensus.Message{Type: consensus.MsgPrepare, Height: 1, From: 0}, true},
		{"marked by its sender", author, consensus.Message{Type: consensus.MsgCommit, Height: 1, From: 0, Relayed: true}, true},
		{"a decision", "12D3KooWsomeoneelse", consensus.Message{Type: consensus.MsgDecision, Height: 1}, false},
		{"an index bound to no peer", "12D3KooWsomeoneelse", consensus.Message{Type: consensus.MsgPrepare, Height: 1, From: 9}, false},
	} {
		m := c.m
		n.markRelayed(c.from, &m)
		if m.Relayed != c.relayed {
			t.Errorf("%s: relayed %v, want %v", c.name, m.Relayed, c.relayed)
		}
	}
}

// A message from its author's own peer that the loop steps after it heard that peer's connection
// close was read before the close: it is no sign that its author is up (markRelayed), or the core
// would forget that a leader just killed is down. Once the peer connects again, its copies count.
func TestMarkRelayedAfterTheAuthorsConnectionClosed(t *testing.T) {
	n := soloNodeAtRest(t)
	if err := n.startCore(nil); err != nil {
		t.Fatal(err)
	}
	author := n.sched.Load().at(1).Peers[0]
	step := func() bool {
		m := consensus.Message{Type: consensus.MsgCommit, Height: 1, From: 0}
		n.markRelayed(author, &m)
		return m.Relayed
	}
	if step() {
		t.Fatal("a copy from its author's peer, connected: relayed")
	}
	n.peerChanged(p2p.PeerEvent{Peer: author})
	if !step() {
		t.Fatal("a copy from its author's peer, stepped after its connection closed: not relayed")
	}
	n.peerChanged(p2p.PeerEvent{Peer: author, Connected: true})
	if step() {
		t.Fatal("a copy from its author's peer, connected again: relayed")
	}
}

// A validator's node losing its last connection is told to the core (and counted once),
// remembered for the next core, and forgotten once it connects again; other peers change nothing.
func TestPeerChangedTracksValidatorsDown(t *testing.T) {
	n := soloNodeAtRest(t)
	if err := n.startCore(nil); err != nil {
		t.Fatal(err)
	}
	val := n.sched.Load().at(1).Peers[0]
	n.peerChanged(p2p.PeerEvent{Peer: "12D3KooWsomeoneelse"})
	n.peerChanged(p2p.PeerEvent{Peer: val, Connected: true})
	if len(n.peersDown) != 0 || counterValueOf(t, n.metrics.peersDown) != 0 {
		t.Fatalf("after a non-validator's disconnect: down %v, counted %v; want neither", n.peersDown, counterValueOf(t, n.metrics.peersDown))
	}
	n.peerChanged(p2p.PeerEvent{Peer: val})
	n.peerChanged(p2p.PeerEvent{Peer: val})
	if !n.peersDown[val] || counterValueOf(t, n.metrics.peersDown) != 1 {
		t.Fatalf("after the validator's disconnect: down %v, counted %v", n.peersDown, counterValueOf(t, n.metrics.peersDown))
	}
	if err := n.startCore(nil); err != nil { // a new core is told again
		t.Fatal(err)
	}
	n.peerChanged(p2p.PeerEvent{Peer: val, Connected: true})
	if n.peersDown[val] {
		t.Fatal("still down after it connected again")
	}
}

// A verified copy of this node's own validator's message from another peer is delivered but not
// relayed: passed on, it would reach the others from its author's peer and read as the author
// alive or lagging (the simulator's TestSimulatorEchoedVotesCostNoTurn).
func TestOwnCopiesAreNotRelayed(t *testing.T) {
	n := soloNodeAtRest(t)
	for _, c := range []struct {
		name string
		m    consensus.Message
		want p2p.Verdict
	}{
		{"own vote", consensus.Message{Type: consensus.MsgPrepare, Height: 1, From: 0}, p2p.Deliver},
		{"own proposal", consensus.Message{Type: consensus.MsgPrePrepare, Height: 1, From: 0}, p2p.Deliver},
		{"a decision", consensus.Message{Type: consensus.MsgDecision, Height: 1, From: 0}, p2p.Accept},
		{"another validator's", consensus.Message{Type: consensus.MsgPrepare, Height: 1, From: 9}, p2p.Accept},
	} {
		if got := n.ownCopy(&c.m); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// admits reports whether a verdict lets a consensus message in. The solo test node's own
// validator signs the messages these tests send from other peers, and copies of a node's own
// messages are delivered without being relayed (ownCopy): admitted all the same.
func admits(v p2p.Verdict) bool { return v == p2p.Accept || v == p2p.Deliver }
