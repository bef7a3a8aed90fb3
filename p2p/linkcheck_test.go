package p2p

import (
	"context"
	"slices"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

var (
	t0     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	peerA  = peer.ID("peer-a")
	peerB  = peer.ID("peer-b")
	topics = []string{"txs", "consensus"}
)

// judgeRun steps a judge through observations on a fake clock.
type judgeRun struct {
	t   *testing.T
	j   *linkJudge
	now time.Time
}

func newJudgeRun(t *testing.T) *judgeRun { return &judgeRun{t: t, j: newLinkJudge(), now: t0} }

// at moves the clock to t0+d and observes links, returning the peers reset.
func (r *judgeRun) at(d time.Duration, links map[peer.ID][]string) []peer.ID {
	r.t.Helper()
	if t := t0.Add(d); t.Before(r.now) {
		r.t.Fatalf("clock going back to %v", d)
	} else {
		r.now = t
	}
	var out []peer.ID
	for _, x := range r.j.observe(r.now, links) {
		out = append(out, x.peer)
	}
	return out
}

func whole(ps ...peer.ID) map[peer.ID][]string {
	m := map[peer.ID][]string{}
	for _, p := range ps {
		m[p] = nil
	}
	return m
}

func missing(p peer.ID, others map[peer.ID][]string) map[peer.ID][]string {
	m := map[peer.ID][]string{p: topics}
	for q, v := range others {
		if q != p {
			m[q] = v
		}
	}
	return m
}

func TestLinkJudgeWholeLinksAreLeftAlone(t *testing.T) {
	r := newJudgeRun(t)
	for s := 0; s <= 600; s++ {
		if got := r.at(time.Duration(s)*time.Second, whole(peerA, peerB)); got != nil {
			t.Fatalf("at %ds reset %v", s, got)
		}
	}
}

func TestLinkJudgeResetsAfterPatienceWithoutReport(t *testing.T) {
	r := newJudgeRun(t)
	r.at(0, whole(peerA, peerB))
	// A new connection whose hello is in flight is missing for a moment: patience, not grace.
	if got := r.at(time.Second, missing(peerA, whole(peerB))); got != nil {
		t.Fatalf("reset %v on first sight", got)
	}
	if got := r.at(time.Second+linkPatience-time.Millisecond, missing(peerA, whole(peerB))); got != nil {
		t.Fatalf("reset %v before the patience ran out", got)
	}
	got := r.j.observe(t0.Add(time.Second+linkPatience), missing(peerA, whole(peerB)))
	if len(got) != 1 || got[0].peer != peerA || got[0].suspected || got[0].absent != linkPatience ||
		!slices.Equal(got[0].missing, topics) || got[0].backoff != linkMinBackoff {
		t.Fatalf("verdict %+v, want peer-a reset after %v, unsuspected, both topics", got, linkPatience)
	}
}

func TestLinkJudgeResetsAfterGraceWhenReported(t *testing.T) {
	r := newJudgeRun(t)
	r.at(0, whole(peerA))
	r.j.suspect(peerA, t0.Add(100*time.Millisecond))
	if next, ok := r.j.nextSuspectCheck(); !ok || !next.Equal(t0.Add(100*time.Millisecond+linkGrace)) {
		t.Fatalf("next check %v %v, want the end of the grace", next, ok)
	}
	if got := r.at(200*time.Millisecond, missing(peerA, nil)); got != nil {
		t.Fatalf("reset %v inside the grace", got)
	}
	got := r.j.observe(t0.Add(100*time.Millisecond+linkGrace), missing(peerA, nil))
	if len(got) != 1 || !got[0].suspected || got[0].absent != linkGrace {
		t.Fatalf("verdict %+v, want a suspected reset after %v", got, linkGrace)
	}
	if _, ok := r.j.nextSuspectCheck(); ok {
		t.Fatal("a report still pending after the reset")
	}
}

func TestLinkJudgeReportThenReannounceIsNoReset(t *testing.T) {
	r := newJudgeRun(t)
	r.at(0, whole(peerA))
	r.j.suspect(peerA, t0.Add(time.Second))
	// The peer's own stream died too: it reopened it and re-announced within the grace.
	if got := r.at(time.Second+linkGrace, whole(peerA)); got != nil {
		t.Fatalf("reset %v of a peer seen whole", got)
	}
	if _, ok := r.j.nextSuspectCheck(); ok {
		t.Fatal("report still pending after the peer was seen whole")
	}
	// Missing again later, with no report: patience applies again.
	if got := r.at(2*time.Second, missing(peerA, nil)); got != nil {
		t.Fatalf("reset %v", got)
	}
	if got := r.at(2*time.Second+linkPatience-time.Millisecond, missing(peerA, nil)); got != nil {
		t.Fatalf("reset %v before the patience ran out", got)
	}
}

func TestLinkJudgeBacksOffAPeerThatNeverSubscribes(t *testing.T) {
	r := newJudgeRun(t)
	var resets []time.Duration
	for ms := time.Duration(0); ms <= 20*time.Minute; ms += 100 * time.Millisecond {
		// Reset or not, it reconnects at once and is missing again (it subscribes to nothing).
		if got := r.at(ms, missing(peerA, whole(peerB))); slices.Contains(got, peerA) {
			resets = append(resets, ms)
		}
	}
	var gaps []time.Duration
	for i := 1; i < len(resets); i++ {
		gaps = append(gaps, resets[i]-resets[i-1])
	}
	// The first wait after a reset is the patience (a new count of absence starts at the
	// check after it), then the backoff dominates: 4 s, 8 s, … up to linkMaxBackoff.
	want := []time.Duration{linkPatience + 100*time.Millisecond, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, 64 * time.Second, linkMaxBackoff, linkMaxBackoff}
	for i, w := range want {
		if i >= len(gaps) || gaps[i] != w {
			t.Fatalf("gaps between resets %v, want %v", gaps, want)
		}
	}
	if len(resets) > 17 {
		t.Fatalf("%d resets in 20 minutes: %v", len(resets), resets)
	}
}

func TestLinkJudgeBackoffResetsOnceTheLinkHolds(t *testing.T) {
	r := newJudgeRun(t)
	var at time.Duration
	step := func(d time.Duration, links map[peer.ID][]string) []peer.ID {
		at += d
		return r.at(at, links)
	}
	// Two resets: the backoff is now 4 s.
	step(0, missing(peerA, nil))
	if got := step(linkPatience, missing(peerA, nil)); got == nil {
		t.Fatal("no first reset")
	}
	step(0, nil) // disconnected by the reset
	step(time.Second, missing(peerA, nil))
	if got := step(linkPatience, missing(peerA, nil)); got == nil {
		t.Fatal("no second reset")
	}
	// Whole for a while, but not linkStable: the next reset still waits 4 s after the last.
	step(time.Second, whole(peerA))
	r.j.suspect(peerA, t0.Add(at))
	if got := step(linkGrace, missing(peerA, nil)); got != nil {
		t.Fatalf("reset %v inside the backoff", got)
	}
	if next, ok := r.j.nextSuspectCheck(); !ok || !next.Equal(t0.Add(2*linkPatience+time.Second+4*time.Second)) {
		t.Fatalf("next check %v, want the end of the backoff", next.Sub(t0))
	}
	step(4*time.Second, missing(peerA, nil)) // reset 3; backoff 8 s
	// Whole for linkStable: back to the minimum.
	step(time.Second, whole(peerA))
	step(linkStable, whole(peerA))
	r.j.suspect(peerA, t0.Add(at))
	got := r.j.observe(t0.Add(at+linkGrace), missing(peerA, nil))
	if len(got) != 1 || got[0].backoff != linkMinBackoff {
		t.Fatalf("verdict %+v, want a reset with the backoff back at %v", got, linkMinBackoff)
	}
}

func TestLinkJudgeForgetsDisconnectedPeers(t *testing.T) {
	r := newJudgeRun(t)
	r.j.suspect(peerA, t0)
	r.at(linkGrace, nil) // gone before its check
	if _, ok := r.j.nextSuspectCheck(); ok {
		t.Fatal("a report pending for a disconnected peer")
	}
	if len(r.j.peers) != 0 {
		t.Fatalf("state kept for %d disconnected peers", len(r.j.peers))
	}
	// Back, and missing: a fresh count, with patience.
	if got := r.at(linkGrace+time.Second, missing(peerA, nil)); got != nil {
		t.Fatalf("reset %v on first sight", got)
	}
}

// breakLink makes the link from src to dst one-sided the way a dead duplicate connection does:
// dst resets the stream src publishes on, src's pubsub forgets dst's subscriptions and opens a
// new stream, and dst, whose own stream is untouched, never announces them again.
func breakLink(t *testing.T, src, dst *Host) {
	t.Helper()
	n := 0
	for _, c := range dst.host.Network().ConnsToPeer(src.host.ID()) {
		for _, s := range c.GetStreams() {
			if s.Stat().Direction == network.DirInbound && slices.Contains(pubsub.GossipSubDefaultProtocols, s.Protocol()) {
				_ = s.Reset()
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no pubsub stream from src found")
	}
}

// A connected peer that pubsub stopped counting as subscribed gets nothing we publish, for as
// long as the connection lasts; the link check resets the connection and messages flow again.
func TestLinkCheckRepairsOneSidedLink(t *testing.T) {
	a := newHost(t, nil)
	b := newHost(t, bootstrapTo(a))
	linked(t, a, b)
	linked(t, b, a)

	breakLink(t, a, b)
	start := time.Now()
	// a learns nothing about it from the network: the connection stays up throughout, and b
	// keeps seeing a as subscribed. Only a's link check can notice.
	linked(t, a, b)
	t.Logf("a's messages reach b again %v after the break; a reset %d link(s)", time.Since(start).Round(time.Millisecond), a.LinkResets())
	if a.LinkResets() == 0 {
		t.Error("messages flow again but a reset no link")
	}
	linked(t, b, a)
	if err := a.PublishConsensus(context.Background(), []byte("after repair")); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, b.Consensus(), a, "after repair")
}

// Without a bootstrap entry on either side (peers found by mDNS or the DHT), the host that
// resets the link dials it back.
func TestLinkCheckRedialsPeerWithoutBootstrap(t *testing.T) {
	a := newHost(t, nil)
	b := newHost(t, nil)
	ai := peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}
	if err := b.host.Connect(context.Background(), ai); err != nil {
		t.Fatal(err)
	}
	linked(t, a, b)
	breakLink(t, a, b)
	linked(t, a, b)
	if a.LinkResets() == 0 {
		t.Error("messages flow again but a reset no link")
	}
}
