package node

import (
	"errors"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
)

// What a hostile validator can cost the others (issue #9). The p2p layer bounds how many messages
// each author gets through (per-author rate limits) and the core bounds what it buffers; this file
// adds what only the node knows:
//
//   - a cheap admission window, checked before any signature: a message for a height or view
//     the core would refuse anyway is Ignored (neither verified nor relayed);
//   - offences: a correctly signed message that the core refuses for a reason an honest validator
//     never gives costs its signer's node gossip score, is counted per validator, and is logged.

// The admission window around the core's (height, view), as last published by the loop. It is
// one wider than the core's own on each side because the snapshot can trail the core by a Ready.
const (
	// Above: the core buffers MaxFutureHeights ahead; block sync brings a node that far behind.
	futureHeightWindow = consensus.MaxFutureHeights + 1
	// Below: the core keeps the last MaxFutureHeights decisions to answer a peer that lags;
	// older heights are served by block sync.
	staleHeightWindow = consensus.MaxFutureHeights + 1
	// Beyond: the core buffers MaxFutureViews ahead of its view.
	futureViewWindow = consensus.MaxFutureViews + 1
)

// outsideWindow says why m is outside the admission window ("" if it is inside). It reads only
// the atomically published snapshot, so it is safe on pubsub's validation goroutines.
//
// View changes beyond the view window are let in: the core remembers the highest one per
// validator so that it can join validators more than MaxFutureViews ahead of it (after a
// partition, say), and without them it could stay behind for good. An honest validator sends one
// per view it enters plus retransmissions (every half second or slower), so each author gets
// farViewChangesPerSec of them; a flood of view changes for ever higher views costs no more.
func (n *Node) outsideWindow(author string, m *consensus.Message) string {
	st := n.snapshot.Load()
	if st == nil {
		return ""
	}
	switch {
	case m.Height > st.Height+futureHeightWindow:
		// Peers are further ahead than consensus catches up: let block sync look now. (The syncer
		// exists once the node is up; wake never blocks.)
		select {
		case <-n.up:
			n.syncer.wake()
		default:
		}
		return "far-future height"
	case m.Height+staleHeightWindow < st.Height:
		return "long-decided height"
	case m.Type == consensus.MsgViewChange && m.Height == st.Height && m.View > st.View+futureViewWindow:
		// Charged to the peer that sent it, which the transport authenticates: a peer cannot spend
		// another's allowance.
		if !n.farViews.allow(author, time.Now()) {
			return "far-future view change over its rate"
		}
		return ""
	case m.Type == consensus.MsgDecision || m.Type == consensus.MsgViewChange:
		return ""
	case m.Height > st.Height+1 && m.View > 0:
		// Every height is entered in view 0: a later view there is settled by a decision first.
		return "future height, later view"
	case m.Height == st.Height && m.View > st.View+futureViewWindow:
		return "far-future view"
	}
	return ""
}

// farViewChangesPerSec is how many view changes beyond the view window each author may send
// per second, in bursts of twice that.
const farViewChangesPerSec = 4

// authorBuckets is a token bucket per author. Authors are peers the p2p layer admitted (members
// and observers), so the map stays small; it is cleared if it ever grows past maxAuthorBuckets.
type authorBuckets struct {
	rate float64
	mu   sync.Mutex
	m    map[string]*tokens
}

type tokens struct {
	n    float64
	last time.Time
}

const maxAuthorBuckets = 1024

func (b *authorBuckets) allow(author string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil || len(b.m) >= maxAuthorBuckets {
		b.m = map[string]*tokens{}
	}
	t := b.m[author]
	if t == nil {
		t = &tokens{n: 2 * b.rate, last: now}
		b.m[author] = t
	}
	if dt := now.Sub(t.last).Seconds(); dt > 0 {
		t.n = min(2*b.rate, t.n+dt*b.rate)
		t.last = now
	}
	if t.n < 1 {
		return false
	}
	t.n--
	return true
}

// invalidMessagePenalty is the gossip score a validator's node loses per offence. An honest
// validator's score is at most about +40, so some 45 offences in quick succession put it below
// p2p.DisconnectScore (-400): a flood is cut off within a fraction of a second at the
// consensus rate limit, while the odd offence fades (p2p halves penalties every minute).
const invalidMessagePenalty = 10

// offenceLogInterval is how often, at most, one validator's offences are logged.
const offenceLogInterval = time.Minute

// offence classifies an error of Core.Step for a correctly signed message: the reason, if it is
// one an honest validator never gives. Stale, future, duplicate and wrong-view refusals are what
// honest peers that lag or lead produce, and are not offences. Refusals that depend on the
// height's state (leader, value, certificates) count only at the height the core is deciding,
// where every honest node sees the same state; a certified decision whose value this node rejects
// means this node differs from the quorum, not that the sender lies.
func offence(err error, m *consensus.Message, deciding uint64) (string, bool) {
	switch {
	case errors.Is(err, consensus.ErrEquivocation):
		return "equivocation", true
	case errors.Is(err, consensus.ErrInvalidCertificate), errors.Is(err, consensus.ErrNoQuorum):
		if m.Height != deciding {
			return "", false
		}
		return "invalid certificate", true
	case errors.Is(err, consensus.ErrMalformed), errors.Is(err, consensus.ErrTooLarge):
		return "malformed", true
	}
	if m.Height != deciding {
		return "", false
	}
	switch {
	case errors.Is(err, consensus.ErrNotLeader):
		return "not the leader", true
	case errors.Is(err, consensus.ErrInvalidValue) && m.Type != consensus.MsgDecision:
		return "invalid value", true
	}
	return "", false
}

// offenceRecord is what is known of one validator's offences since its last log line.
type offenceRecord struct {
	count   uint64
	since   time.Time // of the first offence counted
	logged  time.Time
	reason  string
	example string
}

// noteRefused is called by the loop with each message the core refused, and author, the peer that
// signed its pubsub envelope. An offence is charged to the node bound to the validator that signed
// the message (the validator set binds index to peer ID), never to a peer that merely relayed it;
// a decision carries no signature of its sender, so it is charged to its author.
func (n *Node) noteRefused(author string, m *consensus.Message, err error) {
	reason, ok := offence(err, m, n.core.Status().Height)
	if !ok {
		return
	}
	name, peerID := n.signerOf(author, m)
	if peerID == n.peerID {
		return // signed with this node's key elsewhere: the core's own error says so
	}
	n.metrics.invalidMessages.WithLabelValues(name).Inc()
	if peerID != "" && n.host != nil {
		_ = n.host.Penalize(peerID, invalidMessagePenalty)
	}
	if n.offences == nil {
		n.offences = map[string]*offenceRecord{}
	}
	r := n.offences[name]
	if r == nil {
		r = &offenceRecord{}
		n.offences[name] = r
	}
	now := time.Now()
	if r.count == 0 {
		r.since = now
	}
	r.count++
	r.reason, r.example = reason, err.Error()
	if now.Sub(r.logged) >= offenceLogInterval {
		n.log.Warn("a validator sent correctly signed consensus messages that are invalid; its node "+
			"loses gossip score and is disconnected if this goes on: ask its operator to check it",
			"validator", name, "peer", peerID, "count", r.count, "since", r.since.Format(time.RFC3339), "reason", r.reason,
			"last", r.example)
		r.count, r.logged = 0, now
	}
}

// signerOf names the validator accountable for m and its node's peer ID ("" if none is bound).
func (n *Node) signerOf(author string, m *consensus.Message) (name, peerID string) {
	if m.Type == consensus.MsgDecision {
		return n.peerName(author), author
	}
	e := n.sched.Load().at(m.Height)
	if int(m.From) < len(e.Peers) {
		peerID = e.Peers[m.From]
	}
	if int(m.From) < len(e.Names) && e.Names[m.From] != "" {
		return e.Names[m.From], peerID
	}
	return n.peerName(peerID), peerID
}

// peerName is the name of the validator bound to peer ID p, in any set the node knows, or p.
func (n *Node) peerName(p string) string {
	if p == "" {
		return "unbound"
	}
	s := n.sched.Load()
	for i := len(s.epochs) - 1; i >= 0; i-- {
		e := &s.epochs[i]
		for j, q := range e.Peers {
			if q == p && j < len(e.Names) && e.Names[j] != "" {
				return e.Names[j]
			}
		}
	}
	return p
}

// rateLimitedCollector exports the host's consensus rate-limit drops per author.
type rateLimitedCollector struct {
	n    *Node
	desc *prometheus.Desc
}

func newRateLimitedCollector(n *Node) *rateLimitedCollector {
	return &rateLimitedCollector{n: n, desc: prometheus.NewDesc("guild_p2p_consensus_rate_limited_total",
		"Consensus messages dropped, before validation, because their author (a validator's name, or a peer ID) exceeded its rate limit.",
		[]string{"author"}, nil)}
}

func (c *rateLimitedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *rateLimitedCollector) Collect(ch chan<- prometheus.Metric) {
	byAuthor, _ := c.n.host.ConsensusRateLimited()
	sum := map[string]uint64{}
	for p, v := range byAuthor {
		sum[c.n.peerName(p)] += v
	}
	for name, v := range sum {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), name)
	}
}

// consensusRate is the per-author limit on the consensus topic from the config.
func (n *Node) consensusRate() p2p.RateLimit {
	return p2p.RateLimit{MsgsPerSec: n.cfg.P2P.ConsensusMsgsPerSec}
}

// consensusHeader is what a consensus payload says of itself before anything is verified.
type consensusHeader struct {
	Type   consensus.MsgType `cbor:"1,keyasint"`
	Height uint64            `cbor:"2,keyasint"`
	From   uint32            `cbor:"4,keyasint"`
}

// peekConsensus reads a consensus payload's type, height and sender index with a lenient partial
// decode that skips the value and signatures without copying them; false for evidence and for
// what does not decode.
func peekConsensus(data []byte) (consensusHeader, bool) {
	var hdr consensusHeader
	if isEvidence(data) {
		return hdr, false
	}
	if isProposalRef(data) {
		// A proposal by reference: the signed message is its first field (byref.go).
		var ref struct {
			Message *consensusHeader `cbor:"1,keyasint"`
		}
		if err := cbor.Unmarshal(data[1:], &ref); err != nil || ref.Message == nil {
			return hdr, false
		}
		return *ref.Message, true
	}
	return hdr, cbor.Unmarshal(data, &hdr) == nil
}

// consensusAuthor is p2p.Config.ConsensusAuthor: the node of the validator whose index a
// consensus payload carries, read with a lenient partial decode and verified by nothing (the
// flood inspector charges it per sending peer, so a false claim spends only the claimant's
// link). A decision (signed by a quorum) and evidence name no one author.
func (n *Node) consensusAuthor(data []byte) (peer.ID, bool) {
	hdr, ok := peekConsensus(data)
	if !ok || hdr.Type == consensus.MsgDecision {
		return "", false
	}
	e := n.sched.Load().at(hdr.Height)
	if int(hdr.From) >= len(e.Peers) || e.Peers[hdr.From] == "" {
		return "", false
	}
	id, err := peer.Decode(e.Peers[hdr.From])
	return id, err == nil
}

// consensusStale is p2p.Config.ConsensusStale: a payload for a height this node decided more
// than staleHeightWindow heights ago, which validateConsensus would ignore after a full decode
// (outsideWindow). Saying so from a peek, before the sender's rate bucket is charged, keeps a
// peer that replays old messages from crowding out its own current ones.
func (n *Node) consensusStale(data []byte) bool {
	st := n.snapshot.Load()
	if st == nil {
		return false
	}
	hdr, ok := peekConsensus(data)
	if !ok || hdr.Height+staleHeightWindow >= st.Height {
		return false
	}
	n.metrics.outOfWindow.WithLabelValues("long-decided height").Inc()
	return true
}
