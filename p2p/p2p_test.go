package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const waitLimit = 10 * time.Second

// decoded is what the test validators hand to the subscriber.
type decoded struct{ text string }

func decodeAll(_ string, data []byte) (Verdict, any) {
	return Accept, decoded{text: string(data)}
}

// seenLog records every payload a validator was asked about, to prove what reached a host.
type seenLog struct {
	mu   sync.Mutex
	data []string
}

func (s *seenLog) add(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = append(s.data, string(data))
}

func (s *seenLog) contains(text string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.data, text)
}

func newKey(t testing.TB) (ed25519.PrivateKey, string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := PeerIDFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, id
}

func testConfig(key ed25519.PrivateKey) Config {
	return Config{
		Key:               key,
		Listen:            []string{"/ip4/127.0.0.1/tcp/0"},
		ChainID:           "test-chain",
		ValidateTxs:       decodeAll,
		ValidateConsensus: decodeAll,
		Logger:            slog.New(slog.DiscardHandler),
	}
}

func startHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	h, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// newHost starts a host with a fresh key, letting mutate adjust its config.
func newHost(t testing.TB, mutate func(*Config)) *Host {
	t.Helper()
	key, _ := newKey(t)
	cfg := testConfig(key)
	if mutate != nil {
		mutate(&cfg)
	}
	return startHost(t, cfg)
}

func bootstrapTo(hosts ...*Host) func(*Config) {
	return func(cfg *Config) {
		for _, h := range hosts {
			cfg.Bootstrap = append(cfg.Bootstrap, h.Addrs()...)
		}
	}
}

// waitFor polls cond until it holds or waitLimit passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		<-tick.C
	}
}

// waitTopicPeers waits until h knows n peers subscribed to both topics, so a publication
// reaches them.
func waitTopicPeers(t testing.TB, h *Host, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s to see %d topic peers", h.ID(), n), func() bool {
		return len(h.txs.topic.ListPeers()) >= n && len(h.consensus.topic.ListPeers()) >= n
	})
}

// linked waits until src's publications reach dst on both topics, publishing probes (which
// expectMessage skips) until one arrives. Topic peer lists alone can lag behind a reconnection.
func linked(t testing.TB, src, dst *Host) {
	t.Helper()
	for _, topic := range []struct {
		publish func(context.Context, []byte) error
		ch      <-chan Message
	}{{src.PublishTxs, dst.Txs()}, {src.PublishConsensus, dst.Consensus()}} {
		deadline := time.After(waitLimit)
		tick := time.NewTicker(50 * time.Millisecond)
		for n, arrived := 0, false; !arrived; n++ {
			// Each probe differs, so that the test reads which probe arrived (a repeated payload
			// would be published anew too: see TestRepublishedPayloadReachesLatePeer).
			if err := topic.publish(context.Background(), fmt.Appendf(nil, "%s%s-%d", probePrefix, src.ID(), n)); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-topic.ch:
				// From is the last hop, not the author (no libp2p authors): match the probe.
				arrived = strings.HasPrefix(string(m.Data), probePrefix+src.ID()+"-")
			case <-tick.C:
			case <-deadline:
				t.Fatalf("timed out after %v waiting for %s to reach %s", waitLimit, src.ID(), dst.ID())
			}
		}
		tick.Stop()
	}
}

const probePrefix = "probe-"

func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitLimit):
		t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		var zero T
		return zero
	}
}

// expectMessage expects text from a host as the next message other than a probe.
func expectMessage(t testing.TB, ch <-chan Message, from *Host, text string) {
	t.Helper()
	expectMessageVia(t, ch, text, from)
}

// expectMessageVia expects text as the next message other than a probe, handed over by one of
// hops (the first, or a relay).
func expectMessageVia(t testing.TB, ch <-chan Message, text string, hops ...*Host) {
	t.Helper()
	m := receive(t, ch, fmt.Sprintf("%q from %s", text, hops[0].ID()))
	for strings.HasPrefix(string(m.Data), probePrefix) {
		m = receive(t, ch, fmt.Sprintf("%q from %s", text, hops[0].ID()))
	}
	if !slices.ContainsFunc(hops, func(h *Host) bool { return h.ID() == m.From }) || string(m.Data) != text {
		t.Fatalf("got %q from %s, want %q from %s", m.Data, m.From, text, hops[0].ID())
	}
	if d, ok := m.Decoded.(decoded); !ok || d.text != text {
		t.Fatalf("Decoded = %#v, want decoded{%q}", m.Decoded, text)
	}
}

// A payload published again is a new message: a peer that missed the first copy (here, one that
// was not yet connected, as a validator restarted after a view change was first sent) receives the
// second, and so does a peer that received the first. With message IDs from the payload alone,
// the publisher's own pubsub dropped the second Publish as seen, for seenTTL, and a restarted
// validator could not rejoin a view change: the chain stalled.
func TestRepublishedPayloadReachesLatePeer(t *testing.T) {
	a := newHost(t, nil)
	b := newHost(t, bootstrapTo(a))
	linked(t, a, b)
	const vc = "view-change h=613 v=2"
	if err := a.PublishConsensus(context.Background(), []byte(vc)); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, b.Consensus(), a, vc)

	c := newHost(t, bootstrapTo(a))
	linked(t, a, c)
	if err := a.PublishConsensus(context.Background(), []byte(vc)); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, c.Consensus(), a, vc)
	expectMessage(t, b.Consensus(), a, vc)
}

func TestGossipReachesOtherPeersNotPublisher(t *testing.T) {
	a := newHost(t, nil)
	b := newHost(t, bootstrapTo(a))
	c := newHost(t, bootstrapTo(a, b))
	// Wait for the full mesh of connections, so that linked proves direct delivery and not a
	// relay through the third host.
	for _, h := range []*Host{a, b, c} {
		waitFor(t, h.ID()+" to connect to both others", func() bool { return len(h.Peers()) == 2 })
	}
	linked(t, a, b)
	linked(t, a, c)
	linked(t, b, a)

	if err := a.PublishConsensus(context.Background(), []byte("vote-1")); err != nil {
		t.Fatal(err)
	}
	if err := a.PublishTxs(context.Background(), []byte("txs-1")); err != nil {
		t.Fatal(err)
	}
	// Each gets a's messages, straight from a or first relayed by the other: messages name
	// their last hop, not their author.
	for _, h := range [][2]*Host{{b, c}, {c, b}} {
		expectMessageVia(t, h[0].Consensus(), "vote-1", a, h[1])
		expectMessageVia(t, h[0].Txs(), "txs-1", a, h[1])
	}

	// a's own messages would have entered its channels before they left for the network, so
	// the first thing a receives on each topic being b's reply proves they were filtered out.
	if err := b.PublishConsensus(context.Background(), []byte("vote-2")); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishTxs(context.Background(), []byte("txs-2")); err != nil {
		t.Fatal(err)
	}
	expectMessageVia(t, a.Consensus(), "vote-2", b, c)
	expectMessageVia(t, a.Txs(), "txs-2", b, c)

	peers := a.Peers()
	var ids []string
	for _, p := range peers {
		ids = append(ids, p.ID)
	}
	want := []string{b.ID(), c.ID()}
	sort.Strings(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("Peers() = %v, want %v; b=%v c=%v", peers, want, a.host.Network().Connectedness(b.host.ID()), a.host.Network().Connectedness(c.host.ID()))
	}
	for _, p := range peers {
		if len(p.Addrs) == 0 {
			t.Errorf("peer %s has no addresses", p.ID)
		}
	}
	for _, addr := range a.Addrs() {
		if !strings.HasPrefix(addr, "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(addr, "/p2p/"+a.ID()) {
			t.Errorf("Addrs() has %q", addr)
		}
	}
}

// Three validators connected to one another: each gets the others' transaction messages from
// their publisher and relays none of them, since the publisher sent every message to every peer
// of theirs (pubsub alone relays each to every direct peer, and the copies are dropped as
// duplicates after costing their transport). Consensus messages are relayed as before.
func TestTxsNotRelayedToPeersThePublisherReached(t *testing.T) {
	validator := validatorHosts(t, 3)
	a := validator(0)
	b := validator(1, a)
	c := validator(2, a, b)
	for _, h := range []*Host{a, b, c} {
		waitFor(t, h.ID()+" to connect to both others", func() bool { return len(h.Peers()) == 2 })
		waitTopicPeers(t, h, 2)
	}
	linked(t, a, b)
	linked(t, a, c)
	linked(t, b, c)
	linked(t, c, b)
	dupB, _ := b.DuplicateMessages()
	dupC, _ := c.DuplicateMessages()
	skippedB, skippedC := b.TxRelaysSkipped(), c.TxRelaysSkipped()

	const n = 10
	for i := range n {
		if err := a.PublishTxs(context.Background(), fmt.Appendf(nil, "txs-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Validation runs concurrently, so the messages may arrive in any order.
	for _, h := range []*Host{b, c} {
		got := map[string]bool{}
		for len(got) < n {
			m := receive(t, h.Txs(), "a's transaction messages")
			if strings.HasPrefix(string(m.Data), probePrefix) {
				continue
			}
			if m.From != a.ID() || !strings.HasPrefix(string(m.Data), "txs-") || got[string(m.Data)] {
				t.Fatalf("%s got %q from %s, want each of a's once from a", h.ID(), m.Data, m.From)
			}
			got[string(m.Data)] = true
		}
	}
	// Whatever b and c relay of a's messages is queued to the other before their own next
	// publication, on the same stream: once each has the other's marker, the relays arrived.
	if err := b.PublishTxs(context.Background(), []byte("mark-b")); err != nil {
		t.Fatal(err)
	}
	if err := c.PublishTxs(context.Background(), []byte("mark-c")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, c.Txs(), b, "mark-b")
	expectMessage(t, b.Txs(), c, "mark-c")
	if d, _ := b.DuplicateMessages(); d != dupB {
		t.Errorf("b received %d duplicate transaction messages, want 0", d-dupB)
	}
	if d, _ := c.DuplicateMessages(); d != dupC {
		t.Errorf("c received %d duplicate transaction messages, want 0", d-dupC)
	}
	// At least: a late probe of linked's may be among them.
	if got := b.TxRelaysSkipped() - skippedB; got < n+1 {
		t.Errorf("b skipped %d relays, want %d", got, n+1)
	}
	if got := c.TxRelaysSkipped() - skippedC; got < n+1 {
		t.Errorf("c skipped %d relays, want %d", got, n+1)
	}
}

// A validator that reaches another only through a third still gets its transactions: the
// publisher did not list it, so the one in the middle relays (direct peering among validators
// does not depend on everyone being connected to everyone).
func TestTxsRelayedToValidatorThePublisherDidNotReach(t *testing.T) {
	validator := validatorHosts(t, 3)
	b := validator(1)
	a := validator(0, b)
	c := validator(2, b)
	waitTopicPeers(t, b, 2)
	waitTopicPeers(t, a, 1)
	waitTopicPeers(t, c, 1)
	if a.host.Network().Connectedness(c.host.ID()) == network.Connected {
		t.Fatal("a and c must not be connected")
	}
	if err := a.PublishTxs(context.Background(), []byte("txs-a")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, b.Txs(), a, "txs-a")
	expectMessage(t, c.Txs(), b, "txs-a")
	if err := c.PublishTxs(context.Background(), []byte("txs-c")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, a.Txs(), b, "txs-c")
}

// In a line a - b - c, b's validator decides what c may see: what b rejects, ignores or
// panics on is neither delivered at b nor relayed to c; what it marks Deliver reaches b's node only.
func TestValidatorVerdictsStopDeliveryAndRelay(t *testing.T) {
	var seenAtC seenLog
	dropped := make(chan string, 3)
	bValidate := func(_ string, data []byte) (Verdict, any) {
		switch s := string(data); s {
		case "bad":
			dropped <- s
			return Reject, nil
		case "stale":
			dropped <- s
			return Ignore, nil
		case "boom":
			dropped <- s
			panic("validator bug")
		case "echo":
			_, decoded := decodeAll("", data)
			return Deliver, decoded
		}
		return decodeAll("", data)
	}
	b := newHost(t, func(cfg *Config) { cfg.ValidateTxs = bValidate })
	// a and c bootstrap to b only: c can get a's messages only through b.
	a := newHost(t, bootstrapTo(b))
	c := newHost(t, func(cfg *Config) {
		bootstrapTo(b)(cfg)
		cfg.ValidateTxs = func(from string, data []byte) (Verdict, any) {
			seenAtC.add(data)
			return decodeAll(from, data)
		}
	})
	waitTopicPeers(t, a, 1)
	waitTopicPeers(t, b, 2)
	waitTopicPeers(t, c, 1)
	if a.host.Network().Connectedness(c.host.ID()) == network.Connected {
		t.Fatal("a and c must not be connected")
	}

	// b relays to c once they are in each other's mesh, which gossipsub builds on its 1 s
	// heartbeat; until then c may get a's messages only through gossip (IHAVE/IWANT).
	linked(t, a, c)

	for _, s := range []string{"bad", "stale", "boom"} {
		if err := a.PublishTxs(context.Background(), []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		receive[string](t, dropped, "b's validator to drop a message")
	}
	// Deliver: b's node gets it, c does not.
	if err := a.PublishTxs(context.Background(), []byte("echo")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, b.Txs(), a, "echo")
	if err := a.PublishTxs(context.Background(), []byte("good")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, c.Txs(), b, "good") // a's, from b: messages carry no author, only a sender
	expectMessage(t, b.Txs(), a, "good") // b delivered none of the three either
	for _, s := range []string{"bad", "stale", "boom", "echo"} {
		if seenAtC.contains(s) {
			t.Errorf("b relayed %q to c", s)
		}
	}
}

func TestPublishRejectedByOwnValidator(t *testing.T) {
	h := newHost(t, func(cfg *Config) {
		cfg.ValidateConsensus = func(string, []byte) (Verdict, any) { return Reject, nil }
		cfg.ValidateTxs = func(string, []byte) (Verdict, any) { return Ignore, nil }
	})
	if err := h.PublishConsensus(context.Background(), []byte("x")); !errors.Is(err, ErrRejected) {
		t.Errorf("PublishConsensus = %v, want ErrRejected", err)
	}
	if err := h.PublishTxs(context.Background(), []byte("x")); !errors.Is(err, ErrRejected) {
		t.Errorf("PublishTxs = %v, want ErrRejected", err)
	}
}

func TestPermissionedRefusesStrangers(t *testing.T) {
	keyA, idA := newKey(t)
	keyB, idB := newKey(t)
	allowed := []string{idA, idB}
	cfgA := testConfig(keyA)
	cfgA.AllowedPeers = allowed
	a := startHost(t, cfgA)
	cfgB := testConfig(keyB)
	cfgB.AllowedPeers = allowed
	bootstrapTo(a)(&cfgB)
	b := startHost(t, cfgB)
	// The stranger lets anyone in and bootstraps to both members.
	x := newHost(t, bootstrapTo(a, b))
	linked(t, a, b)

	// Refused at a's handshake (InterceptSecured). In Noise XX the initiator finishes first, so
	// x's dial may report success, but a drops the connection before any stream is opened.
	if err := x.host.Connect(context.Background(), peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}); err != nil {
		t.Logf("stranger's dial failed: %v", err)
	}
	waitFor(t, "a to drop the stranger", func() bool {
		return x.host.Network().Connectedness(a.host.ID()) != network.Connected
	})
	// ... and never dialed by a member (InterceptPeerDial).
	err := a.host.Connect(context.Background(), peer.AddrInfo{ID: x.host.ID(), Addrs: x.host.Addrs()})
	if err == nil {
		t.Fatal("permissioned host dialed a stranger")
	}

	if err := a.PublishConsensus(context.Background(), []byte("members only")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, b.Consensus(), a, "members only")
	for _, h := range []*Host{a, b} {
		for _, p := range h.Peers() {
			if p.ID == x.ID() {
				t.Errorf("%s lists the stranger as a peer", h.ID())
			}
		}
	}
	if n := len(x.txs.topic.ListPeers()) + len(x.consensus.topic.ListPeers()); n != 0 {
		t.Errorf("stranger has %d topic peers", n)
	}
	select {
	case m := <-x.Consensus():
		t.Errorf("stranger received %q", m.Data)
	default:
	}
}

func TestOversizedMessageNotDelivered(t *testing.T) {
	const limit = 1024
	var seenAtB seenLog
	a := newHost(t, func(cfg *Config) { cfg.MaxMessageBytes = 64 << 10 })
	b := newHost(t, func(cfg *Config) {
		bootstrapTo(a)(cfg)
		cfg.MaxMessageBytes = limit
		cfg.ValidateTxs = func(from string, data []byte) (Verdict, any) {
			seenAtB.add(data)
			return decodeAll(from, data)
		}
	})
	linked(t, a, b)

	big := bytes.Repeat([]byte{'x'}, limit+1)
	if err := b.PublishTxs(context.Background(), big); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("publishing %d bytes with a %d limit: %v, want ErrMessageTooLarge", len(big), limit, err)
	}
	// a's limit is larger, so a sends it; b drops it before its validator runs.
	if err := a.PublishTxs(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	fits := bytes.Repeat([]byte{'y'}, limit)
	if err := a.PublishTxs(context.Background(), fits); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, b.Txs(), a, string(fits))
	if seenAtB.contains(string(big)) {
		t.Error("b's validator was given the oversized message")
	}
}

func TestRedialsBootstrapPeerAfterDisconnect(t *testing.T) {
	a := newHost(t, nil)
	b := newHost(t, bootstrapTo(a))
	linked(t, a, b)
	if err := a.host.Network().ClosePeer(b.host.ID()); err != nil {
		t.Fatal(err)
	}
	// Only b's dialer can bring the link back (a has no bootstrap peers).
	waitFor(t, "the connection to close", func() bool {
		return a.host.Network().Connectedness(b.host.ID()) != network.Connected
	})
	linked(t, a, b)
	if err := a.PublishConsensus(context.Background(), []byte("again")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, b.Consensus(), a, "again")
}

func TestCloseIsIdempotentAndStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	key1, _ := newKey(t)
	key2, _ := newKey(t)
	a, err := New(context.Background(), testConfig(key1))
	if err != nil {
		t.Fatal(err)
	}
	cfgB := testConfig(key2)
	cfgB.Bootstrap = a.Addrs()
	b, err := New(context.Background(), cfgB)
	if err != nil {
		t.Fatal(err)
	}
	linked(t, a, b)
	if err := a.PublishTxs(context.Background(), []byte("last")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, b.Txs(), a, "last")

	for _, h := range []*Host{a, b} {
		first := h.Close()
		if second := h.Close(); second != first {
			t.Errorf("second Close = %v, first = %v", second, first)
		}
	}
	if err := a.PublishTxs(context.Background(), []byte("after")); !errors.Is(err, ErrClosed) {
		t.Errorf("publish after Close = %v, want ErrClosed", err)
	}
	// libp2p winds some goroutines down asynchronously after Close returns.
	waitFor(t, "goroutines to wind down", func() bool { return runtime.NumGoroutine() <= before+2 })
}

func TestNewRejectsBadConfig(t *testing.T) {
	key, _ := newKey(t)
	for name, mutate := range map[string]func(*Config){
		"no validator":    func(c *Config) { c.ValidateTxs = nil },
		"no chain":        func(c *Config) { c.ChainID = "" },
		"short key":       func(c *Config) { c.Key = c.Key[:10] },
		"bad allowed":     func(c *Config) { c.AllowedPeers = []string{"not-a-peer-id"} },
		"bootstrap no id": func(c *Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/1"} },
		"negative max":    func(c *Config) { c.MaxMessageBytes = -1 },
		"bad observer":    func(c *Config) { c.Observers = []string{"nope"} },
		"bad validator":   func(c *Config) { c.Validators = []string{"nope"} },
		"bad announce":    func(c *Config) { c.Announce = []string{"/nope"} },
	} {
		cfg := testConfig(key)
		mutate(&cfg)
		if h, err := New(context.Background(), cfg); !errors.Is(err, ErrConfig) {
			if h != nil {
				_ = h.Close()
			}
			t.Errorf("%s: New = %v, want ErrConfig", name, err)
		}
	}
}

// connectedPair gives two hosts that see each other on both topics.
func connectedPair(b *testing.B) (*Host, *Host) {
	src := newHost(b, nil)
	dst := newHost(b, bootstrapTo(src))
	linked(b, src, dst)
	return src, dst
}

// BenchmarkPublishConsensus measures one-way delivery of a 256-byte consensus message over
// loopback, publish to receipt, one message in flight at a time: signing, both validators,
// Noise, yamux and pubsub's loops included.
func BenchmarkPublishConsensus(b *testing.B) {
	src, dst := connectedPair(b)
	payload := bytes.Repeat([]byte{'v'}, 256)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := src.PublishConsensus(ctx, payload); err != nil {
			b.Fatal(err)
		}
		for m := receive(b, dst.Consensus(), "consensus message"); len(m.Data) != len(payload); {
			m = receive(b, dst.Consensus(), "consensus message") // a late probe
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkPublishTxsThroughput pipelines 16 KiB transaction batches (the node gossips batches,
// not single transactions) and measures sustained delivery.
func BenchmarkPublishTxsThroughput(b *testing.B) {
	src, dst := connectedPair(b)
	payload := bytes.Repeat([]byte{'t'}, 16<<10)
	ctx := context.Background()
	done := make(chan struct{})
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	go func() {
		defer close(done)
		for n := 0; n < b.N; {
			if m := <-dst.Txs(); len(m.Data) == len(payload) { // not a late probe
				n++
			}
		}
	}()
	for range b.N {
		if err := src.PublishTxs(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(waitLimit):
		b.Fatal("not all batches were delivered")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
}

// Deliver hands a message to the node and tells pubsub to ignore it, its only way not to relay
// it; Accept lets pubsub deliver and relay it.
func TestDeliverVerdictIsNotRelayed(t *testing.T) {
	h := newHost(t, nil)
	other := newHost(t, nil)
	for _, tc := range []struct {
		verdict Verdict
		want    pubsub.ValidationResult
		handed  bool
	}{{Deliver, pubsub.ValidationIgnore, true}, {Accept, pubsub.ValidationAccept, false}} {
		topic := &gossipTopic{name: "test", out: make(chan Message, 1)}
		validate := h.wrapValidator(topic, func(string, []byte) (Verdict, any) { return tc.verdict, "decoded" })
		msg := &pubsub.Message{Message: &pb.Message{Data: h.seal([]byte("x"), nil)}, ReceivedFrom: other.host.ID()}
		if got := validate(context.Background(), other.host.ID(), msg); got != tc.want {
			t.Errorf("%v: pubsub told %v, want %v", tc.verdict, got, tc.want)
		}
		select {
		case m := <-topic.out:
			if !tc.handed || m.Decoded != "decoded" || string(m.Data) != "x" {
				t.Errorf("%v: handed %+v to the node", tc.verdict, m)
			}
		default:
			if tc.handed {
				t.Errorf("%v: not handed to the node", tc.verdict)
			}
		}
	}
}

// validatorHosts makes n validator keys and returns a function that starts validator i's host,
// bootstrapped to boot, with all n as the validator set.
func validatorHosts(t *testing.T, n int) func(i int, boot ...*Host) *Host {
	var keys []ed25519.PrivateKey
	var ids []string
	for range n {
		k, id := newKey(t)
		keys, ids = append(keys, k), append(ids, id)
	}
	return func(i int, boot ...*Host) *Host {
		cfg := testConfig(keys[i])
		cfg.Validators = ids
		bootstrapTo(boot...)(&cfg)
		return startHost(t, cfg)
	}
}
