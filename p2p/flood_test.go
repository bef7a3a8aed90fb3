package p2p

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A member that floods the consensus topic with correctly signed messages is held to its rate at
// the victim, loses its place once the excess is sustained, and never crowds out an honest
// member, whose messages keep arriving throughout.
func TestConsensusFloodCutOffHonestGetsThrough(t *testing.T) {
	keys, ids := members(t, 3)
	const rate = 20
	var fromX, fromB atomic.Int64
	cfgA := testConfig(keys[0])
	cfgA.AllowedPeers = ids
	cfgA.ConsensusRate = RateLimit{MsgsPerSec: rate, BytesPerSec: 1 << 20}
	cfgA.ValidateConsensus = func(from string, data []byte) (Verdict, any) {
		switch from {
		case ids[1]:
			fromB.Add(1)
		case ids[2]:
			fromX.Add(1)
		}
		return decodeAll(from, data)
	}
	a := startHost(t, cfgA)
	cfgB, cfgX := testConfig(keys[1]), testConfig(keys[2])
	cfgB.AllowedPeers, cfgX.AllowedPeers = ids, ids
	bootstrapTo(a)(&cfgB)
	bootstrapTo(a)(&cfgX)
	b, x := startHost(t, cfgB), startHost(t, cfgX)
	linked(t, b, a)
	linked(t, x, a)
	probes := fromX.Load()
	xID := mustPeerID(t, x.ID())

	start := time.Now()
	deadline := start.Add(3 * waitLimit)
	flood, honest := 0, 0
	var lastHonest time.Time
	for a.ScoreDisconnects() == 0 || connected(a, x) {
		if time.Now().After(deadline) {
			t.Fatalf("a did not disconnect x after %d flooded messages in %v", flood, time.Since(start))
		}
		for range 50 {
			if err := x.PublishConsensus(context.Background(), fmt.Appendf(nil, "flood-%d", flood)); err != nil {
				t.Fatal(err)
			}
			flood++
		}
		// b speaks at an honest pace meanwhile (half its rate), and is heard.
		if time.Since(lastHonest) < time.Second/(rate/2) {
			continue
		}
		lastHonest = time.Now()
		if err := b.PublishConsensus(context.Background(), fmt.Appendf(nil, "honest-%d", honest)); err != nil {
			t.Fatal(err)
		}
		honest++
	}
	elapsed := time.Since(start)
	if !a.gater.isBlocked(xID) {
		t.Fatal("x is not cooling off")
	}
	byAuthor, total := a.ConsensusRateLimited()
	if byAuthor[x.ID()] == 0 || total < byAuthor[x.ID()] {
		t.Fatalf("drops by author %v, total %d: x's flood not counted", byAuthor, total)
	}
	if byAuthor[b.ID()] != 0 {
		t.Fatalf("%d of honest b's messages dropped", byAuthor[b.ID()])
	}
	// At most the bucket (2 s of rate) plus what refilled while the flood lasted reached the
	// validator.
	limit := int64(2*rate + rate*elapsed.Seconds() + 1)
	if got := fromX.Load() - probes; got < 1 || got > limit {
		t.Fatalf("a's validator saw %d of %d flooded messages, want at most %d", got, flood, limit)
	}
	t.Logf("a's validator saw %d of %d flooded messages (limit %d) in %v; b sent %d", fromX.Load()-probes, flood, limit, elapsed, honest)
	if err := b.PublishConsensus(context.Background(), []byte("after")); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for m := receive(t, a.Consensus(), "b's messages"); m.From != b.ID() || string(m.Data) != "after"; m = receive(t, a.Consensus(), "b's messages") {
		if m.From == b.ID() {
			seen++
		}
	}
	// b's messages were all delivered (it may have been a few behind its probes when x went).
	if seen < honest {
		t.Fatalf("a received %d of honest b's %d messages during the flood", seen, honest)
	}
	for _, p := range a.Peers() {
		if p.ID == b.ID() && p.Score < 0 {
			t.Errorf("honest b has score %v", p.Score)
		}
	}
}

// rpcWith builds an RPC of messages authored by author on topic.
func rpcWith(author peer.ID, topic string, n int) *pubsub.RPC {
	rpc := &pubsub.RPC{}
	for i := range n {
		rpc.Publish = append(rpc.Publish, &pb.Message{From: []byte(author), Topic: &topic, Data: fmt.Appendf(nil, "m%d", i)})
	}
	return rpc
}

// The inspector charges (sender, author) before the validation queue: one author's excess is cut
// from an RPC without touching another author's messages in it, and only a sender's excess of its
// own messages costs it score.
func TestInspectorLimitsEachSenderAuthorPair(t *testing.T) {
	const topic = "/guild/c/consensus/2"
	fc := newFloodControl(map[string]RateLimit{topic: {MsgsPerSec: 10, BytesPerSec: 1 << 20}})
	x, b, relay := peer.ID("x"), peer.ID("b"), peer.ID("relay")

	rpc := rpcWith(x, topic, 500)
	rpc.Publish = append(rpc.Publish, rpcWith(b, topic, 5).Publish...)
	other := "/guild/c/other/1"
	rpc.Publish = append(rpc.Publish, rpcWith(x, other, 3).Publish...)
	if err := fc.inspectRPC(x, rpc); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, m := range rpc.Publish {
		count[m.GetTopic()+"/"+string(m.GetFrom())]++
	}
	// 2 s of 10 msg/s for x; b's five are within its own bucket; unknown topics pass untouched.
	if want := (map[string]int{topic + "/x": 20, topic + "/b": 5, other + "/x": 3}); fmt.Sprint(count) != fmt.Sprint(want) {
		t.Fatalf("kept %v, want %v", count, want)
	}
	byAuthor, total := fc.dropped[topic].snapshot()
	if byAuthor[x.String()] != 480 || total != 480 {
		t.Fatalf("dropped %v (total %d), want 480 of x's", byAuthor, total)
	}
	now := time.Now()
	if p := fc.penalty(x, now); p < 480-rateTolerance-1 {
		t.Fatalf("x's own excess costs %v", p)
	}
	// The same flood relayed by an honest peer is cut the same way, at no cost to the relayer.
	if err := fc.inspectRPC(relay, rpcWith(x, topic, 500)); err != nil {
		t.Fatal(err)
	}
	if p := fc.penalty(relay, now); p != 0 {
		t.Fatalf("relaying x's flood costs the relayer %v", p)
	}
	if p := fc.penalty(b, now); p != 0 {
		t.Fatalf("honest b penalised %v", p)
	}
}

// Penalties add up, fade by half every penaltyHalfLife, and are forgotten with the peer.
func TestPenaltiesDecay(t *testing.T) {
	p := &penalties{m: map[peer.ID]*decaying{}}
	id := peer.ID("x")
	now := time.Unix(1000, 0)
	for range 50 {
		p.add(id, 10, now)
	}
	if v := p.value(id, now); v != 500 {
		t.Fatalf("penalty %v, want 500", v)
	}
	if v := p.value(id, now.Add(penaltyHalfLife)); v < 249 || v > 251 {
		t.Fatalf("after one half-life: %v, want 250", v)
	}
	p.forget(func(peer.ID) bool { return false })
	if v := p.value(id, now); v != 0 {
		t.Fatalf("forgotten peer still penalised %v", v)
	}
}

// A Penalize'd peer's score falls below DisconnectScore, and it is disconnected and refused.
func TestPenalizeDisconnects(t *testing.T) {
	keys, ids := members(t, 2)
	cfg := func(i int) Config {
		c := testConfig(keys[i])
		c.AllowedPeers = ids
		return c
	}
	a := startHost(t, cfg(0))
	cfgX := cfg(1)
	bootstrapTo(a)(&cfgX)
	x := startHost(t, cfgX)
	linked(t, x, a)
	if err := a.Penalize("not a peer id", 1); err == nil {
		t.Fatal("Penalize accepted a malformed peer ID")
	}
	for range 10 {
		if err := a.Penalize(x.ID(), 50); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a to disconnect x", func() bool { return a.ScoreDisconnects() == 1 && !connected(a, x) })
	if !a.gater.isBlocked(mustPeerID(t, x.ID())) {
		t.Fatal("x is not cooling off")
	}
}

// BenchmarkFloodMemory measures what hosts keep per message after a flood has gone through them
// (pubsub's seen cache and score delivery records, both kept for seenTTL, and the gossip
// history): memory under a sustained flood is about retained-B/msg × rate × seenTTL. The figure
// covers both the publisher and the receiver, which share the process.
func BenchmarkFloodMemory(b *testing.B) {
	keys, ids := members(b, 2)
	var got atomic.Int64
	cfgA := testConfig(keys[0])
	cfgA.AllowedPeers = ids
	cfgA.ConsensusRate = RateLimit{MsgsPerSec: 1e9, BytesPerSec: 1e12} // measure memory, not limits
	cfgA.ValidateConsensus = func(from string, data []byte) (Verdict, any) {
		got.Add(1)
		return Accept, nil
	}
	a := startHost(b, cfgA)
	cfgX := testConfig(keys[1])
	cfgX.AllowedPeers = ids
	bootstrapTo(a)(&cfgX)
	x := startHost(b, cfgX)
	linked(b, x, a)
	go func() { // the node would read them; keep the subscription flowing
		for range a.Consensus() {
		}
	}()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	const chunk = 500
	for i := 0; i < b.N; {
		start := got.Load()
		n := min(chunk, b.N-i)
		for j := range n {
			if err := x.PublishConsensus(context.Background(), fmt.Appendf(nil, "junk-%d", i+j)); err != nil {
				b.Fatal(err)
			}
		}
		i += n
		waitFor(b, "the chunk to be validated", func() bool { return got.Load() >= start+int64(n) })
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "retained-B/msg")
}

// Pubsub's per-message warning about the connection manager's tag queue is a debug line; other
// pubsub warnings stay warnings.
func TestQuietPubsubDemotesTagQueueWarnings(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(quietPubsub{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})}).With("component", "pubsub")
	log.Warn("error bumping delivery tag", "err", "queue full (len=128)")
	if buf.Len() != 0 {
		t.Fatalf("logged at info level: %s", buf.String())
	}
	log.Warn("slow heartbeat", "took", "1s")
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "component=pubsub") {
		t.Fatalf("other warnings lost: %q", buf.String())
	}
	buf.Reset()
	debug := slog.New(quietPubsub{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	debug.Warn("error bumping delivery tag")
	if !strings.Contains(buf.String(), "level=DEBUG") {
		t.Fatalf("at debug level: %q", buf.String())
	}
}

// Without libp2p authors (StrictNoSign), the inspector takes the author a payload names
// (Config.ConsensusAuthor): a relayed flood by x is cut at no cost to the relayer, x's own costs
// x, and a payload that names no author is charged to its sender's link alone.
func TestInspectorChargesThePayloadsAuthor(t *testing.T) {
	const topic = "/guild/c/consensus/2"
	fc := newFloodControl(map[string]RateLimit{topic: {MsgsPerSec: 10, BytesPerSec: 1 << 20}})
	fc.authorOf[topic] = func(data []byte) (peer.ID, bool) {
		if len(data) > 0 && data[0] == 'x' {
			return "x", true
		}
		return "", false
	}
	unsigned := func(prefix string, n int) *pubsub.RPC {
		topic := topic
		rpc := &pubsub.RPC{}
		for i := range n {
			rpc.Publish = append(rpc.Publish, &pb.Message{Topic: &topic, Data: sealed(uint64(i), fmt.Appendf(nil, "%s%d", prefix, i))})
		}
		return rpc
	}
	x, relay := peer.ID("x"), peer.ID("relay")
	now := time.Now()
	rpc := unsigned("x", 500)
	if err := fc.inspectRPC(relay, rpc); err != nil || len(rpc.Publish) != 20 {
		t.Fatalf("relayed flood of x: kept %d (%v), want 20", len(rpc.Publish), err)
	}
	if p := fc.penalty(relay, now); p != 0 {
		t.Fatalf("relaying x's flood costs the relayer %v", p)
	}
	if err := fc.inspectRPC(x, unsigned("x", 500)); err != nil {
		t.Fatal(err)
	}
	if p := fc.penalty(x, now); p < 480-rateTolerance-1 {
		t.Fatalf("x's own excess costs %v", p)
	}
	// Anonymous payloads from the relay have their own bucket, not x's.
	rpc = unsigned("anon", 15)
	if err := fc.inspectRPC(relay, rpc); err != nil || len(rpc.Publish) != 15 {
		t.Fatalf("anonymous payloads: kept %d (%v), want 15", len(rpc.Publish), err)
	}
}

// A message's ID is its content: the same data on a topic is one message whoever relays it;
// another payload, topic or envelope nonce (another publication) is another.
func TestContentID(t *testing.T) {
	a, b := "t1", "t2"
	m := func(topic, data string) *pb.Message { return &pb.Message{Topic: &topic, Data: sealed(1, []byte(data))} }
	if contentID(m(a, "x")) != contentID(&pb.Message{Topic: &a, Data: sealed(1, []byte("x")), From: []byte("p")}) {
		t.Error("same data, different IDs")
	}
	if contentID(m(a, "x")) == contentID(m(a, "y")) || contentID(m(a, "x")) == contentID(m(b, "x")) {
		t.Error("different payloads or topics, one ID")
	}
	if contentID(m(a, "x")) == contentID(&pb.Message{Topic: &a, Data: sealed(2, []byte("x"))}) {
		t.Error("two publications of one payload, one ID")
	}
}

// sealed is what Host.seal makes of payload with the given nonce.
func sealed(nonce uint64, payload []byte) []byte {
	h := &Host{}
	h.pubNonce.Store(nonce - 1)
	return h.seal(payload, nil)
}

func TestOpenEnvelope(t *testing.T) {
	if p, to, ok := openEnvelope(sealed(7, []byte("vote"))); !ok || string(p) != "vote" || to != nil {
		t.Fatalf("openEnvelope(seal(vote)) = %q, %x, %v", p, to, ok)
	}
	if p, _, ok := openEnvelope(sealed(7, nil)); !ok || len(p) != 0 {
		t.Fatalf("openEnvelope(seal(empty)) = %q, %v", p, ok)
	}
	h := &Host{}
	a, b := peerTag("a"), peerTag("b")
	withTags := h.seal([]byte("txs"), [][peerTagSize]byte{a, b})
	if p, to, ok := openEnvelope(withTags); !ok || string(p) != "txs" || !hasTag(to, a) || !hasTag(to, b) || hasTag(to, peerTag("c")) {
		t.Fatalf("openEnvelope(seal(txs, [a b])) = %q, %x, %v", p, to, ok)
	}
	if p, to, ok := openEnvelope(h.seal([]byte("txs"), [][peerTagSize]byte{})); !ok || string(p) != "txs" || to == nil || len(to) != 0 {
		t.Fatalf("openEnvelope(seal(txs, [])) = %q, %x, %v", p, to, ok)
	}
	many := make([][peerTagSize]byte, maxSentTo+5)
	if _, to, ok := openEnvelope(h.seal(nil, many)); !ok || len(to) != maxSentTo*peerTagSize {
		t.Fatalf("%d tags sealed: %d bytes of tags, %v", len(many), len(to), ok)
	}
	for _, bad := range [][]byte{nil, {envelopeVersion}, []byte("bare payload"),
		append([]byte{3}, sealed(1, []byte("x"))[1:]...),
		withTags[:envelopeSize],               // no count
		withTags[:envelopeSize+1+peerTagSize], // fewer tags than counted
	} {
		if _, _, ok := openEnvelope(bad); ok {
			t.Errorf("openEnvelope(%q) accepted", bad)
		}
	}
}

// The limiter in front of the validator is keyed by the last hop (gossip is unsigned): a burst
// of relayed messages over it is dropped, but costs the relaying peer no score, or a node back
// from a pause would cut off every peer that delivered its backlog.
func TestValidatorLimitCostsTheRelayNoScore(t *testing.T) {
	const topic = "/guild/c/consensus/2"
	fc := newFloodControl(map[string]RateLimit{topic: {MsgsPerSec: 10, BytesPerSec: 1 << 20}})
	relay := newPeerID(t)
	validate := fc.limit(topic, peer.ID("self"), func(string, []byte) (Verdict, any) { return Accept, nil })
	accepted, ignored := 0, 0
	for i := range 500 {
		switch v, _ := validate(relay.String(), fmt.Appendf(nil, "m%d", i)); v {
		case Accept:
			accepted++
		case Ignore:
			ignored++
		}
	}
	if ignored == 0 || accepted == 0 {
		t.Fatalf("accepted %d, ignored %d of a burst of 500: want both", accepted, ignored)
	}
	if p := fc.penalty(relay, time.Now()); p != 0 {
		t.Fatalf("a relayed burst over the validator's limit costs the relay %v", p)
	}
}

// A node that was frozen reads its peers' backlog at once: the inspector still drops what is over
// the limit, but charges the senders no score for it, from the moment the node runs again (before
// its clock watch has ticked) until the grace after the freeze has passed. Then a burst costs
// score again.
func TestBacklogAfterFreezeCostsNoScore(t *testing.T) {
	const topic = "/guild/c/consensus/2"
	fc := newFloodControl(map[string]RateLimit{topic: {MsgsPerSec: 10, BytesPerSec: 1 << 20}})
	fc.clock = newClockWatch(slog.New(slog.DiscardHandler), time.Now().Add(-10*time.Second))
	x, y := peer.ID("x"), peer.ID("y")

	// Resumed, the watch has not ticked yet: its last tick is 10 s old.
	if err := fc.inspectRPC(x, rpcWith(x, topic, 500)); err != nil {
		t.Fatal(err)
	}
	if _, total := fc.dropped[topic].snapshot(); total != 480 {
		t.Fatalf("dropped %d of the backlog, want 480: the limit must hold during a freeze", total)
	}
	if p := fc.penalty(x, time.Now()); p != 0 {
		t.Fatalf("the backlog read after a freeze costs its sender %v", p)
	}
	// The watch ticks: a 10 s freeze is forgiven for 20 s.
	fc.clock.tick(time.Now())
	if n := fc.clock.freezes.Load(); n != 1 {
		t.Fatalf("freezes = %d, want 1", n)
	}
	if err := fc.inspectRPC(y, rpcWith(y, topic, 500)); err != nil {
		t.Fatal(err)
	}
	if p := fc.penalty(y, time.Now()); p != 0 {
		t.Fatalf("a burst during the grace costs its sender %v", p)
	}
	// Grace over: the same burst is a flood again.
	fc.clock.graceUntil.Store(time.Now().Add(-time.Second).UnixNano())
	fc.clock.tick(time.Now())
	if err := fc.inspectRPC(y, rpcWith(y, topic, 500)); err != nil {
		t.Fatal(err)
	}
	if p := fc.penalty(y, time.Now()); p < 480-rateTolerance-1 {
		t.Fatalf("a burst with no freeze costs its sender only %v", p)
	}
}

func TestClockWatchGrace(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := newClockWatch(slog.New(slog.DiscardHandler), t0)
	c.tick(t0.Add(clockTick))
	if c.freezes.Load() != 0 || c.forgiving(t0.Add(clockTick)) {
		t.Fatal("an on-time tick taken for a freeze")
	}
	for _, tc := range []struct{ gap, grace time.Duration }{
		{2 * time.Second, freezeGraceMin},
		{15 * time.Second, 30 * time.Second},
		{10 * time.Minute, freezeGraceMax},
	} {
		now := time.Unix(0, c.last.Load()).Add(tc.gap)
		if !c.forgiving(now) {
			t.Fatalf("gap %v: not forgiving before the tick", tc.gap)
		}
		c.tick(now)
		if !c.forgiving(now.Add(tc.grace - time.Millisecond)) {
			t.Fatalf("gap %v: not forgiving within %v", tc.gap, tc.grace)
		}
		c.last.Store(now.Add(tc.grace - clockTick).UnixNano()) // ticking on time since
		c.tick(now.Add(tc.grace))
		if c.forgiving(now.Add(tc.grace)) {
			t.Fatalf("gap %v: still forgiving after %v", tc.gap, tc.grace)
		}
	}
}

// A peer replaying old messages at its full rate must not crowd out its own current ones (issue
// #9's replay mode: the hostile leader's proposals were dropped with its replays and waited for a
// retransmission, halving the blocks/s). Payloads the stale check calls long decided are ignored
// before the bucket is charged and never reach the validator.
func TestStaleMessagesSpendNoAllowance(t *testing.T) {
	const topic = "/guild/c/consensus/2"
	fc := newFloodControl(map[string]RateLimit{topic: {MsgsPerSec: 10, BytesPerSec: 1 << 20}})
	fc.stale[topic] = func(data []byte) bool { return bytes.HasPrefix(data, []byte("old")) }
	validated := 0
	validate := fc.limit(topic, peer.ID("self"), func(string, []byte) (Verdict, any) {
		validated++
		return Accept, nil
	})
	sender := newPeerID(t).String()
	for i := range 1000 {
		if v, _ := validate(sender, fmt.Appendf(nil, "old%d", i)); v != Ignore {
			t.Fatalf("stale payload %d: verdict %v, want Ignore", i, v)
		}
	}
	if validated != 0 {
		t.Fatalf("%d stale payloads reached the validator", validated)
	}
	// The bucket holds 2 s worth (20): all of the sender's current messages still pass.
	for i := range 20 {
		if v, _ := validate(sender, fmt.Appendf(nil, "new%d", i)); v != Accept {
			t.Fatalf("current message %d after 1,000 replays: verdict %v, want Accept", i, v)
		}
	}
}

// newPeerID is a fresh, valid peer ID (the limiters decode the sender's).
func newPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
