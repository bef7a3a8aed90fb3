package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// members makes n keys and their peer IDs.
func members(t testing.TB, n int) ([]ed25519.PrivateKey, []string) {
	keys := make([]ed25519.PrivateKey, n)
	ids := make([]string, n)
	for i := range n {
		keys[i], ids[i] = newKey(t)
	}
	return keys, ids
}

func connected(a, b *Host) bool {
	return a.host.Network().Connectedness(b.host.ID()) == network.Connected
}

func mustPeerID(t testing.TB, s string) peer.ID {
	t.Helper()
	id, err := peer.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestQUICOnlyConnection(t *testing.T) {
	quicOnly := func(cfg *Config) { cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"} }
	a := newHost(t, quicOnly)
	b := newHost(t, func(cfg *Config) { quicOnly(cfg); bootstrapTo(a)(cfg) })
	for _, addr := range a.Addrs() {
		if !strings.Contains(addr, "/quic-v1/p2p/") {
			t.Fatalf("QUIC-only host announces %q", addr)
		}
	}
	linked(t, b, a)
	linked(t, a, b)
	for _, c := range a.host.Network().ConnsToPeer(b.host.ID()) {
		if !strings.Contains(c.RemoteMultiaddr().String(), "/quic-v1") {
			t.Errorf("connection over %s, want QUIC", c.RemoteMultiaddr())
		}
	}
	if err := b.PublishConsensus(context.Background(), []byte("over quic")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, a.Consensus(), b, "over quic")
}

// A host speaks TLS as well as Noise over TCP: a peer that offers only TLS gets in.
func TestTLSOverTCPAccepted(t *testing.T) {
	a := newHost(t, nil)
	key, _ := newKey(t)
	lk, err := libp2pKey(key)
	if err != nil {
		t.Fatal(err)
	}
	other, err := libp2p.New(libp2p.Identity(lk), libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport), libp2p.Security(libp2ptls.ID, libp2ptls.New), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Connect(context.Background(), peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}); err != nil {
		t.Fatalf("TLS-only peer could not connect: %v", err)
	}
	conns := other.Network().ConnsToPeer(a.host.ID())
	if len(conns) == 0 || conns[0].ConnState().Security != libp2ptls.ID {
		t.Fatalf("connections %v, want one secured by %s", conns, libp2ptls.ID)
	}
}

func TestAnnounceReplacesListenAddrs(t *testing.T) {
	const public = "/ip4/203.0.113.7/tcp/26656"
	h := newHost(t, func(cfg *Config) { cfg.Announce = []string{public} })
	if got := h.Addrs(); !slices.Equal(got, []string{public + "/p2p/" + h.ID()}) {
		t.Fatalf("Addrs() = %v, want only the announced address", got)
	}
	key, _ := newKey(t)
	cfg := testConfig(key)
	cfg.Announce = []string{"not a multiaddr"}
	if _, err := New(context.Background(), cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad announce address: %v, want ErrConfig", err)
	}
}

func TestSetAllowedPeersDropsRemovedPeer(t *testing.T) {
	keys, ids := members(t, 3)
	start := func(i int, mutate func(*Config)) *Host {
		cfg := testConfig(keys[i])
		cfg.AllowedPeers = ids
		if mutate != nil {
			mutate(&cfg)
		}
		return startHost(t, cfg)
	}
	a := start(0, nil)
	b := start(1, bootstrapTo(a))
	c := start(2, bootstrapTo(a)) // keeps redialing a
	linked(t, b, a)
	linked(t, c, a)

	if err := a.SetAllowedPeers(ids[:2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to drop c", func() bool { return !connected(a, c) && !connected(c, a) })
	// c's dialer keeps trying; a refuses it at the handshake, so no connection survives.
	err := c.host.Connect(context.Background(), peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()})
	waitFor(t, "the refused connection to close", func() bool { return !connected(c, a) })
	t.Logf("c's redial: %v", err)
	for _, p := range a.Peers() {
		if p.ID == c.ID() {
			t.Fatal("a lists the removed peer")
		}
	}
	linked(t, b, a)
	linked(t, a, b)

	if err := a.SetAllowedPeers([]string{"nonsense"}); !errors.Is(err, ErrConfig) {
		t.Errorf("SetAllowedPeers(bad id) = %v, want ErrConfig", err)
	}
	open := newHost(t, nil)
	if err := open.SetAllowedPeers(ids); !errors.Is(err, ErrNotPermissioned) {
		t.Errorf("SetAllowedPeers on an open host = %v, want ErrNotPermissioned", err)
	}
}

func TestPeersReportRoleScoreAndLatency(t *testing.T) {
	keys, ids := members(t, 3)
	obsKey, obsID := newKey(t)
	start := func(key ed25519.PrivateKey, mutate func(*Config)) *Host {
		cfg := testConfig(key)
		cfg.AllowedPeers = ids
		cfg.Observers = []string{obsID}
		cfg.Validators = ids[:2]
		if mutate != nil {
			mutate(&cfg)
		}
		return startHost(t, cfg)
	}
	a := start(keys[0], nil)
	b := start(keys[1], bootstrapTo(a))
	c := start(keys[2], bootstrapTo(a))
	o := start(obsKey, bootstrapTo(a))
	for _, h := range []*Host{b, c, o} {
		linked(t, h, a)
	}
	want := map[string]struct {
		role      string
		validator bool
	}{b.ID(): {RoleMember, true}, c.ID(): {RoleMember, false}, o.ID(): {RoleObserver, false}}
	waitFor(t, "scores and latencies of all peers", func() bool {
		ps := a.Peers()
		if len(ps) != 3 {
			return false
		}
		for _, p := range ps {
			if !p.HasScore || p.Latency == 0 {
				return false
			}
		}
		return true
	})
	for _, p := range a.Peers() {
		w := want[p.ID]
		if p.Role != w.role || p.Validator != w.validator {
			t.Errorf("peer %s: role %q validator %v, want %q %v", p.ID, p.Role, p.Validator, w.role, w.validator)
		}
		// The validator bonus is the application score; honest peers have no penalty.
		if w.validator && p.Score < validatorScore || p.Score < 0 {
			t.Errorf("peer %s (validator %v): score %v", p.ID, w.validator, p.Score)
		}
	}
}

func TestDiscoveredPeerDialedOnlyIfAllowed(t *testing.T) {
	keys, ids := members(t, 2)
	cfgA, cfgB := testConfig(keys[0]), testConfig(keys[1])
	cfgA.AllowedPeers, cfgB.AllowedPeers = ids, ids
	a, b := startHost(t, cfgA), startHost(t, cfgB)
	stranger := newHost(t, nil)

	info := func(h *Host) peer.AddrInfo { return peer.AddrInfo{ID: h.host.ID(), Addrs: h.host.Addrs()} }
	n := mdnsNotifee{a}
	n.HandlePeerFound(info(stranger))
	n.HandlePeerFound(info(b))
	waitFor(t, "a to dial the discovered member", func() bool { return connected(a, b) })
	linked(t, b, a)
	if connected(a, stranger) || connected(stranger, a) {
		t.Fatal("a dialed a discovered stranger")
	}
}

// mDNS over the machine's multicast interface: two hosts with no bootstrap list find each other.
func TestMDNSFindsPeer(t *testing.T) {
	keys, ids := members(t, 2)
	chain := "mdns-" + ids[0][len(ids[0])-8:] // unique, so other test runs' hosts are not found
	var hosts []*Host
	for _, k := range keys {
		cfg := testConfig(k)
		cfg.ChainID = chain
		cfg.AllowedPeers = ids
		cfg.MDNS = true
		hosts = append(hosts, startHost(t, cfg))
	}
	// Multicast answers take their own time: a query sent before the other host's responder is up
	// is answered only at the next query round, and a busy machine delays both (CI saw 10 s pass).
	deadline := time.Now().Add(3 * waitLimit)
	for !connected(hosts[0], hosts[1]) {
		if time.Now().After(deadline) {
			t.Fatalf("mDNS did not connect the two hosts within %v", 3*waitLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	linked(t, hosts[0], hosts[1])
}

func TestLearnedAddressesSurviveRestart(t *testing.T) {
	keys, ids := members(t, 2)
	book := filepath.Join(t.TempDir(), "peers.json")
	cfgA := testConfig(keys[0])
	cfgA.AllowedPeers, cfgA.AddrBook = ids, book
	a, err := New(context.Background(), cfgA)
	if err != nil {
		t.Fatal(err)
	}
	// b has no bootstrap list and never dials; a learns b's address by discovering it.
	cfgB := testConfig(keys[1])
	cfgB.AllowedPeers = ids
	b := startHost(t, cfgB)
	mdnsNotifee{a}.HandlePeerFound(peer.AddrInfo{ID: b.host.ID(), Addrs: b.host.Addrs()})
	waitFor(t, "a to remember b", func() bool {
		data, err := os.ReadFile(book)
		return err == nil && bytes.Contains(data, []byte(b.ID()))
	})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to see a go", func() bool { return !connected(b, a) })

	a2 := startHost(t, cfgA) // same key, same book, still no bootstrap list
	waitFor(t, "the restarted a to redial b", func() bool { return connected(a2, b) })
	linked(t, b, a2)

	// A corrupt book is an error at start, not a silent loss of the peers.
	if err := os.WriteFile(book, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgA.Listen = nil
	if h, err := New(context.Background(), cfgA); err == nil {
		_ = h.Close()
		t.Fatal("New accepted a corrupt address book")
	}
}

// rawPublisher speaks gossipsub by hand with a member's key, to send what a Host never would:
// forged signatures and byte-for-byte replays.
type rawPublisher struct {
	h   host.Host
	key crypto.PrivKey
	s   network.Stream
}

func newRawPublisher(t *testing.T, key ed25519.PrivateKey, to *Host) *rawPublisher {
	t.Helper()
	lk, err := libp2pKey(key)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(lk), libp2p.NoListenAddrs, libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	// Accept the victim's gossipsub stream, so that it takes us for a gossipsub peer and scores us.
	drain := func(s network.Stream) { _, _ = io.Copy(io.Discard, s) }
	h.SetStreamHandler(pubsub.GossipSubID_v12, drain)
	h.SetStreamHandler(pubsub.GossipSubID_v11, drain)
	if err := h.Connect(context.Background(), peer.AddrInfo{ID: to.host.ID(), Addrs: to.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(context.Background(), to.host.ID(), pubsub.GossipSubID_v12, pubsub.GossipSubID_v11)
	if err != nil {
		t.Fatal(err)
	}
	return &rawPublisher{h: h, key: lk, s: s}
}

// Protobuf by hand (the fields of pubsub's rpc.proto used here): every field is length-delimited
// except SubOpts.subscribe, a varint.
func pbBytes(field int, b []byte) []byte {
	out := binary.AppendUvarint(nil, uint64(field<<3|2))
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

// message encodes a pubsub message signed by the publisher; forge spoils the signature.
// message is an RPC message as honest nodes send it (no author, sequence number or signature:
// StrictNoSign), or, with forge, one that carries a libp2p signature (a bad one), which the
// network's policy refuses and penalises.
func (r *rawPublisher) message(t *testing.T, topic string, data []byte, seqno uint64, forge bool) []byte {
	t.Helper()
	data = sealed(seqno, data)
	if !forge {
		return slices.Concat(pbBytes(2, data), pbBytes(4, []byte(topic)))
	}
	from := []byte(r.h.ID())
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], seqno)
	unsigned := slices.Concat(pbBytes(1, from), pbBytes(2, data), pbBytes(3, seq[:]), pbBytes(4, []byte(topic)))
	sig, err := r.key.Sign(append([]byte(pubsub.SignPrefix), unsigned...))
	if err != nil {
		t.Fatal(err)
	}
	if forge {
		sig[0] ^= 0xff
	}
	return append(unsigned, pbBytes(5, sig)...)
}

// send writes one RPC with the subscriptions, then one RPC per message (the victim's limit on
// an RPC is about one message).
func (r *rawPublisher) send(t *testing.T, subscribe []string, msgs [][]byte) {
	t.Helper()
	write := func(rpc []byte) {
		if _, err := r.s.Write(append(binary.AppendUvarint(nil, uint64(len(rpc))), rpc...)); err != nil {
			t.Fatal(err)
		}
	}
	if len(subscribe) > 0 {
		var rpc []byte
		for _, topic := range subscribe {
			rpc = append(rpc, pbBytes(1, append([]byte{1 << 3, 1}, pbBytes(2, []byte(topic))...))...)
		}
		write(rpc)
	}
	for _, m := range msgs {
		write(pbBytes(2, m))
	}
}

// counter counts what a validator is shown, by payload.
type counter struct{ replayed, rejected atomic.Int64 }

// honestValidator accepts everything but payloads starting with "bad", which it rejects.
func (c *counter) validate(from string, data []byte) (Verdict, any) {
	if string(data) == "replayed" {
		c.replayed.Add(1)
	}
	if bytes.HasPrefix(data, []byte("bad")) {
		c.rejected.Add(1)
		return Reject, nil
	}
	return decodeAll(from, data)
}

// A member that sends what honest nodes never relay is scored down, disconnected and refused for
// the cool-off, while the honest members keep exchanging messages.
func TestMisbehavingMemberIsDisconnected(t *testing.T) {
	const volume = 40
	for _, kind := range []string{"malformed", "oversized", "forged signature"} {
		t.Run(kind, func(t *testing.T) {
			keys, ids := members(t, 3)
			var atA counter
			cfg := func(i int) Config {
				c := testConfig(keys[i])
				c.AllowedPeers = ids
				c.MaxMessageBytes = 1024
				return c
			}
			cfgA := cfg(0)
			cfgA.ValidateTxs, cfgA.ValidateConsensus = atA.validate, atA.validate
			a := startHost(t, cfgA)
			cfgB := cfg(1)
			bootstrapTo(a)(&cfgB)
			b := startHost(t, cfgB)
			linked(t, b, a)
			xID := mustPeerID(t, ids[2])

			switch kind {
			case "malformed", "oversized":
				cfgX := cfg(2)
				cfgX.MaxMessageBytes = 64 << 10 // so that x sends what a refuses
				bootstrapTo(a)(&cfgX)
				x := startHost(t, cfgX)
				linked(t, x, a)
				for i := range volume {
					var err error
					if kind == "malformed" {
						err = x.PublishConsensus(context.Background(), fmt.Appendf(nil, "bad-%d", i))
					} else {
						err = x.PublishTxs(context.Background(), bytes.Repeat([]byte{byte(i)}, 2048))
					}
					if err != nil && !errors.Is(err, ErrClosed) {
						t.Logf("x's publish %d: %v", i, err) // x may already be cut off
					}
				}
			case "forged signature":
				x := newRawPublisher(t, keys[2], a)
				topic := txsTopic(cfgA.ChainID)
				x.send(t, []string{topic}, nil)
				waitFor(t, "a to see x on the topic", func() bool { return slices.Contains(a.txs.topic.ListPeers(), xID) })
				// A byte-for-byte replay is dropped as a duplicate before validation: shown once.
				valid := x.message(t, topic, []byte("replayed"), 1, false)
				x.send(t, nil, slices.Repeat([][]byte{valid}, volume))
				expectMessage(t, a.Txs(), &Host{host: x.h}, "replayed")
				if n := atA.replayed.Load(); n != 1 {
					t.Fatalf("a's validator saw the replayed message %d times, want 1", n)
				}
				if d := a.ScoreDisconnects(); d != 0 {
					t.Fatalf("replays alone disconnected %d peers", d)
				}
				var forged [][]byte
				for i := range volume {
					forged = append(forged, x.message(t, topic, fmt.Appendf(nil, "forged-%d", i), uint64(i+2), true))
				}
				x.send(t, nil, forged)
			}

			waitFor(t, "a to disconnect x for its score", func() bool {
				return a.ScoreDisconnects() == 1 && a.host.Network().Connectedness(xID) != network.Connected
			})
			if !a.gater.isBlocked(xID) {
				t.Fatal("x is not cooling off")
			}
			if a.gater.admits(xID) || a.gater.InterceptPeerDial(xID) {
				t.Fatal("the gater would let x back in during its cool-off")
			}
			if kind == "malformed" && atA.rejected.Load() == 0 {
				t.Fatal("a's validator rejected nothing")
			}
			if kind != "malformed" && atA.rejected.Load() != 0 {
				t.Fatalf("a's validator was shown %d bad messages; pubsub should have stopped them", atA.rejected.Load())
			}
			// The honest members are untouched.
			linked(t, a, b)
			linked(t, b, a)
			for _, p := range a.Peers() {
				if p.ID == b.ID() && p.Score < 0 {
					t.Errorf("honest b has score %v", p.Score)
				}
			}
		})
	}
}

func TestTxRateLimitIgnoresFlood(t *testing.T) {
	keys, ids := members(t, 3)
	var fromX, fromB atomic.Int64
	cfgA := testConfig(keys[0])
	cfgA.AllowedPeers = ids
	cfgA.TxRate = RateLimit{MsgsPerSec: 5, BytesPerSec: 1 << 20}
	cfgA.ValidateTxs = func(from string, data []byte) (Verdict, any) {
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

	// x floods until a cuts it off: sustained excess (far beyond rateTolerance) costs x its place.
	start := time.Now()
	deadline := start.Add(3 * waitLimit)
	flood := 0
	for a.ScoreDisconnects() == 0 || connected(a, x) {
		if time.Now().After(deadline) {
			t.Fatalf("a did not disconnect x after %d flooded messages in %v", flood, time.Since(start))
		}
		for range 50 {
			if err := x.PublishTxs(context.Background(), fmt.Appendf(nil, "flood-%d", flood)); err != nil {
				t.Fatal(err)
			}
			flood++
		}
	}
	if a.TxRateLimited() == 0 {
		t.Fatal("no message counted as rate limited")
	}
	// At most the bucket (2 s of 5 msg/s) plus what refilled while the flood lasted got through.
	limit := 10 + int64(5*time.Since(start).Seconds()) + 1
	if got := fromX.Load() - probes; got < 1 || got > limit {
		t.Fatalf("a's validator saw %d of %d flooded messages, want at most %d", got, flood, limit)
	} else {
		t.Logf("a's validator saw %d of %d flooded messages (limit %d) in %v", got, flood, limit, time.Since(start))
	}
	if fromB.Load() == 0 {
		t.Fatal("b's probes never reached a's validator")
	}
	if err := b.PublishTxs(context.Background(), []byte("honest")); err != nil {
		t.Fatal(err)
	}
	for m := receive(t, a.Txs(), "b's message"); m.From != b.ID() || string(m.Data) != "honest"; {
		m = receive(t, a.Txs(), "b's message") // x's messages that got through, b's probes
	}
}

func TestRateLimiterBuckets(t *testing.T) {
	r := newRateLimiter[peer.ID](RateLimit{MsgsPerSec: 10, BytesPerSec: 1000}, DefaultTxRateLimit)
	p := peer.ID("p")
	now := time.Unix(1000, 0)
	passed := 0
	for range 100 {
		if r.allow(p, 10, now, true) {
			passed++
		}
	}
	if passed != 20 { // 2 s of 10 msg/s; 20 × 10 bytes is within 2 s of bytes
		t.Fatalf("burst let %d through, want 20", passed)
	}
	if pen := r.penalty(p, now); pen != 0 {
		t.Fatalf("80 excess messages cost %v; the first %v are tolerated", pen, rateTolerance)
	}
	if r.allow(p, 1, now.Add(50*time.Millisecond), true) { // 50 ms refills half a message
		t.Fatal("allowed before a token refilled")
	}
	if !r.allow(p, 1, now.Add(200*time.Millisecond), true) {
		t.Fatal("not allowed after a token refilled")
	}
	if r.allow(p, 3000, now.Add(10*time.Second), true) { // over the byte bucket, whatever the message count
		t.Fatal("allowed a message larger than the byte bucket")
	}
	for range 300 {
		r.allow(p, 1e6, now.Add(10*time.Second), true)
	}
	if pen := r.penalty(p, now.Add(10*time.Second)); pen < 200 {
		t.Fatalf("sustained excess costs only %v", pen)
	}
	r.forget(func(peer.ID) bool { return false })
	if pen := r.penalty(p, now.Add(10*time.Second)); pen != 0 {
		t.Fatalf("forgotten peer still penalised %v", pen)
	}
}

func TestGaterCoolOffExpires(t *testing.T) {
	_, ids := members(t, 1)
	g, err := newAllowlistGater(ids, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p := mustPeerID(t, ids[0])
	if !g.admits(p) {
		t.Fatal("member not admitted")
	}
	g.block(p, time.Hour)
	if g.admits(p) || g.InterceptPeerDial(p) {
		t.Fatal("blocked member admitted")
	}
	g.block(p, -time.Second) // a cool-off that has ended
	if !g.admits(p) {
		t.Fatal("member still refused after its cool-off")
	}
	if len(g.blocked) != 0 {
		t.Fatal("expired cool-off not forgotten")
	}
}

// Over the chain's DHT, two members that know only a third find each other.
func TestDHTFindsMembers(t *testing.T) {
	keys, ids := members(t, 3)
	start := func(i int, mutate func(*Config)) *Host {
		cfg := testConfig(keys[i])
		cfg.AllowedPeers, cfg.DHT = ids, true
		if mutate != nil {
			mutate(&cfg)
		}
		return startHost(t, cfg)
	}
	a := start(0, nil)
	b := start(1, bootstrapTo(a))
	c := start(2, bootstrapTo(a))
	waitFor(t, "b and c to find each other", func() bool { return connected(b, c) })
	linked(t, b, c)
	linked(t, c, b)
}

// A host missing allowed peers starts its mDNS service again every mdnsRefresh (the resolver
// stops querying after one answer, and a peer's announcement missed once is never repeated); a
// host connected to every allowed peer leaves it alone.
func TestMDNSRestartsWhilePeersAreMissing(t *testing.T) {
	saved := mdnsRefresh
	t.Cleanup(func() { mdnsRefresh = saved }) // after the hosts' own cleanups, which stop them
	mdnsRefresh = 20 * time.Millisecond
	keys, ids := members(t, 2)
	cfg := testConfig(keys[0])
	cfg.ChainID = "mdns-refresh-" + ids[0][len(ids[0])-8:]
	cfg.AllowedPeers = ids
	cfg.MDNS = true
	h := startHost(t, cfg)
	current := func() any {
		h.bgMu.Lock()
		defer h.bgMu.Unlock()
		return h.mdns
	}
	first := current()
	waitFor(t, "the mDNS service to be started again while a member is missing", func() bool { return current() != first })

	other := testConfig(keys[1])
	other.ChainID = cfg.ChainID
	other.AllowedPeers = ids
	bootstrapTo(h)(&other)
	startHost(t, other)
	waitFor(t, "the member to connect", func() bool { return !h.missingPeers() })
	settled := current()
	time.Sleep(10 * mdnsRefresh)
	if current() != settled {
		t.Fatal("the mDNS service was started again with every member connected")
	}
}
