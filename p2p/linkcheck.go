package p2p

import (
	"cmp"
	"context"
	"slices"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Link repair: a connected peer that pubsub no longer counts as subscribed to our topics gets
// its connections closed, so that both sides redial and announce their subscriptions afresh.
//
// Why: pubsub learns a peer's subscriptions once per stream, from the hello RPC the peer sends
// when it opens its stream to us, and forgets all of them whenever OUR stream to the peer dies
// (handleDeadPeers clears the peer from every topic). When that happens while the peer is still
// connected over another connection, pubsub opens a new stream and sends the peer our
// subscriptions, but the peer, whose own stream to us is fine, never re-announces its own. From
// then on we publish nothing to it. The common way in: a node is killed (SIGKILL) and restarts;
// its new process connects and announces itself before our side sees the old connection die
// (a QUIC connection to a killed process lives until its next packet draws a stateless reset).
// The restarted validator then never hears the survivors' votes, and a 4-validator chain that
// needs it for a quorum stalls for good (issue #9). The restarted node sees the mirror image
// until then: we opened no stream on its new connection, so it does not know our subscriptions.
// And after four such deaths in ten minutes pubsub stops writing to a connected peer at all
// (MaxBackoffAttempts), which also shows as a peer missing from our topics. Closing the
// connection is the only lever: pubsub's own state is not reachable, and a fresh connection
// makes both sides start over cleanly.
//
// Every Guild host subscribes to both of its topics, so a connected peer that speaks gossipsub and
// is missing from one of them is a broken link, not a choice; a peer that really subscribes to
// less (another program, say) is reset at most once per backoff, which doubles to linkMaxBackoff.
const (
	// linkCheckInterval is how often every link is checked.
	linkCheckInterval = time.Second
	// linkGrace is how long a peer may be missing after pubsub reported our stream to it closed
	// while it stays connected: enough for a peer whose own stream also died to reopen it and
	// re-announce (pubsub retries after at most 0.1 s, 0.2 s, 0.4 s).
	linkGrace = 500 * time.Millisecond
	// linkPatience is how long a peer may be missing without such a report (a new connection's
	// hello in flight, a stream being replaced).
	linkPatience = 3 * time.Second
	// Resets of one peer are at least linkMinBackoff apart, doubling to linkMaxBackoff; the
	// backoff falls back to linkMinBackoff once the link has been whole for linkStable.
	linkMinBackoff = 2 * time.Second
	linkMaxBackoff = 2 * time.Minute
	linkStable     = time.Minute
	// linkRedialDelay lets the peer see the connection close before we dial it back, so its
	// pubsub drops us before the new connection brings us back.
	linkRedialDelay = 100 * time.Millisecond
)

// linkRepair, when set to "off" at link time (go build -ldflags
// "-X github.com/guild-ledger/guild/p2p.linkRepair=off"), makes the checker log broken links
// without closing them: only for the experiment that shows what the repair is for.
var linkRepair = "on"

// linkJudge decides, from what pubsub shows at each check, which peers' links to reset. It is
// pure: times come in as arguments, so tests drive it with a fake clock. Not safe for concurrent
// use; the checker's goroutine owns it.
type linkJudge struct {
	grace, patience                time.Duration
	minBackoff, maxBackoff, stable time.Duration
	peers                          map[peer.ID]*linkState
}

type linkState struct {
	absentSince  time.Time // zero: in every topic at the last check
	suspectSince time.Time // zero: no closed-stream report since it was last seen whole
	presentSince time.Time // zero: not seen whole at the last check
	backoff      time.Duration
	notBefore    time.Time // no reset before this
}

// linkReset is the judge's verdict on one peer: close its connections.
type linkReset struct {
	peer      peer.ID
	missing   []string      // our topics pubsub does not list it in
	absent    time.Duration // how long it has been missing
	suspected bool          // pubsub reported our stream to it closed while it stayed connected
	backoff   time.Duration // no further reset of this peer before this much time has passed
}

func newLinkJudge() *linkJudge {
	return &linkJudge{grace: linkGrace, patience: linkPatience, minBackoff: linkMinBackoff,
		maxBackoff: linkMaxBackoff, stable: linkStable, peers: map[peer.ID]*linkState{}}
}

func (j *linkJudge) state(p peer.ID) *linkState {
	s := j.peers[p]
	if s == nil {
		s = &linkState{backoff: j.minBackoff}
		j.peers[p] = s
	}
	return s
}

// suspect records pubsub's report, at now, that our stream to the still-connected p closed.
func (j *linkJudge) suspect(p peer.ID, now time.Time) {
	s := j.state(p)
	if s.suspectSince.IsZero() {
		s.suspectSince = now
	}
}

// observe takes, for every connected peer that speaks gossipsub, the topics of ours that pubsub
// does not list it in (none: the link is whole), and returns the peers to reset.
func (j *linkJudge) observe(now time.Time, links map[peer.ID][]string) []linkReset {
	var out []linkReset
	for p, s := range j.peers {
		if _, ok := links[p]; ok {
			continue
		}
		// Gone: a new connection starts a new count, but a recent reset keeps its backoff.
		s.absentSince, s.suspectSince, s.presentSince = time.Time{}, time.Time{}, time.Time{}
		if now.After(s.notBefore.Add(j.stable)) {
			delete(j.peers, p)
		}
	}
	for p, missing := range links {
		s := j.state(p)
		if len(missing) == 0 {
			s.absentSince, s.suspectSince = time.Time{}, time.Time{}
			if s.presentSince.IsZero() {
				s.presentSince = now
			}
			if now.Sub(s.presentSince) >= j.stable {
				s.backoff = j.minBackoff
			}
			continue
		}
		s.presentSince = time.Time{}
		if s.absentSince.IsZero() {
			s.absentSince = now
		}
		wait := j.patience
		if !s.suspectSince.IsZero() {
			// The report says when the peer went missing, even if no check saw it yet.
			s.absentSince = minTime(s.absentSince, s.suspectSince)
			wait = j.grace
		}
		absent := now.Sub(s.absentSince)
		if absent < wait || now.Before(s.notBefore) {
			continue
		}
		out = append(out, linkReset{peer: p, missing: missing, absent: absent,
			suspected: !s.suspectSince.IsZero(), backoff: s.backoff})
		s.notBefore = now.Add(s.backoff)
		s.backoff = min(2*s.backoff, j.maxBackoff)
		s.absentSince, s.suspectSince = time.Time{}, time.Time{}
	}
	slices.SortFunc(out, func(a, b linkReset) int { return cmp.Compare(a.peer, b.peer) })
	return out
}

// nextSuspectCheck is when a pending report can next lead to a reset: the earliest end of a
// grace period or of a backoff that holds one back (ok false: no report pending).
func (j *linkJudge) nextSuspectCheck() (time.Time, bool) {
	var next time.Time
	for _, s := range j.peers {
		if s.suspectSince.IsZero() {
			continue
		}
		due := s.suspectSince.Add(j.grace)
		if s.notBefore.After(due) {
			due = s.notBefore
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next, !next.IsZero()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// linkTracer is the pubsub RawTracer that tells the checker when our stream to a peer closed
// while the peer stays connected. Pubsub calls it from its event loop, so it must neither block
// nor call back into pubsub: it only posts the peer, and drops the report when the checker is
// behind (the periodic check still finds the peer).
type linkTracer struct {
	net    func() network.Network
	events chan peer.ID
	// Copies of messages received after the first (dropped by ID), on the transactions topic
	// and on the others: what relaying costs (Host.DuplicateMessages).
	txsTopic         string
	dupTxs, dupOther atomic.Uint64
	// consTopic's later copies go to consDups (Host.ConsensusDuplicates), dropped when it is
	// full: a copy from its author's own peer, which lost the race to another peer's relay,
	// still says that the author is alive.
	consTopic string
	consDups  chan Message
	// Transaction messages pubsub dropped on its own, by reason (Host.TxMessagesDropped): no
	// validator or peer is at fault, and nothing else tells that a batch went missing.
	txDrops [numTxDropReasons]atomic.Uint64
}

// Reasons pubsub drops a transaction message without any verdict of ours.
const (
	TxDropValidationQueue = iota // the validation queue was full (from a peer)
	TxDropThrottled              // too many messages of the topic were being validated already
	TxDropUndeliverable          // the subscription's buffer was full (this node reads too slowly)
	TxDropOutbound               // the queue to a peer was full, so it was not sent to that peer
	numTxDropReasons
)

// TxDropReasons names the reasons above, for metrics labels.
var TxDropReasons = [numTxDropReasons]string{"validation_queue_full", "validation_throttled", "undeliverable", "outbound_queue_full"}

func (t *linkTracer) OnClosedOutboundStream(p peer.ID) {
	if t.net().Connectedness(p) != network.Connected {
		return // an ordinary disconnection
	}
	select {
	case t.events <- p:
	default:
	}
}

func (*linkTracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (*linkTracer) Join(string)                              {}
func (*linkTracer) Leave(string)                             {}
func (*linkTracer) Graft(peer.ID, string)                    {}
func (*linkTracer) Prune(peer.ID, string)                    {}
func (*linkTracer) ValidateMessage(*pubsub.Message)          {}
func (*linkTracer) DeliverMessage(*pubsub.Message)           {}
func (t *linkTracer) RejectMessage(m *pubsub.Message, reason string) {
	if m.GetTopic() != t.txsTopic {
		return
	}
	switch reason {
	case pubsub.RejectValidationQueueFull:
		t.txDrops[TxDropValidationQueue].Add(1)
	case pubsub.RejectValidationThrottled:
		t.txDrops[TxDropThrottled].Add(1)
	}
}
func (t *linkTracer) DuplicateMessage(m *pubsub.Message) {
	if m.GetTopic() == t.txsTopic {
		t.dupTxs.Add(1)
		return
	}
	t.dupOther.Add(1)
	if m.GetTopic() == t.consTopic && t.consDups != nil {
		select {
		case t.consDups <- Message{From: m.ReceivedFrom.String(), Data: m.GetData()}:
		default:
		}
	}
}
func (*linkTracer) ThrottlePeer(peer.ID)                                 {}
func (*linkTracer) RecvRPC(*pubsub.RPC)                                  {}
func (*linkTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*linkTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (t *linkTracer) DropRPC(rpc *pubsub.RPC, _ peer.ID) {
	for _, m := range rpc.GetPublish() {
		if m.GetTopic() == t.txsTopic {
			t.txDrops[TxDropOutbound].Add(1)
		}
	}
}
func (t *linkTracer) UndeliverableMessage(m *pubsub.Message) {
	if m.GetTopic() == t.txsTopic {
		t.txDrops[TxDropUndeliverable].Add(1)
	}
}

// runLinkCheck checks every link each linkCheckInterval, and linkGrace after each report of a
// closed stream, until Close.
func (h *Host) runLinkCheck(events <-chan peer.ID) {
	defer h.wg.Done()
	judge := newLinkJudge()
	tick := time.NewTicker(linkCheckInterval)
	defer tick.Stop()
	// soon fires when the earliest pending report is due; a spare firing only costs a check.
	soon := time.NewTimer(linkCheckInterval)
	defer soon.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case p := <-events:
			judge.suspect(p, time.Now())
			h.log.Debug("pubsub stream to a connected peer closed; checking its subscriptions soon", "peer", p)
		case <-tick.C:
			h.checkLinks(judge, time.Now())
		case <-soon.C:
			h.checkLinks(judge, time.Now())
		}
		if next, ok := judge.nextSuspectCheck(); ok {
			soon.Reset(max(time.Until(next), 0))
		}
	}
}

// checkLinks compares the connected peers that speak gossipsub with pubsub's topic peer lists,
// and resets the links the judge gives up on.
func (h *Host) checkLinks(judge *linkJudge, now time.Time) {
	resets := judge.observe(now, h.links())
	for _, r := range resets {
		if linkRepair == "off" {
			h.log.Warn("gossip link one-sided: pubsub does not count a connected peer as subscribed, "+
				"so nothing is published to it (repair disabled in this build)",
				"peer", r.peer, "missing_topics", r.missing, "absent_for", r.absent.Round(time.Millisecond),
				"after_stream_closed", r.suspected)
			continue
		}
		h.log.Warn("gossip link one-sided: pubsub does not count a connected peer as subscribed, "+
			"so nothing is published to it; closing the connection so both sides reconnect and re-announce "+
			"(if this repeats for one peer, check that it runs the same chain and version)",
			"peer", r.peer, "missing_topics", r.missing, "absent_for", r.absent.Round(time.Millisecond),
			"after_stream_closed", r.suspected, "next_reset_after", r.backoff)
		h.linkResets.Add(1)
		_ = h.host.Network().ClosePeer(r.peer)
		p := r.peer
		h.goBackground(func() { h.redial(p) })
	}
}

// links maps each connected, allowed peer that speaks gossipsub to the topics of ours that
// pubsub does not list it in.
func (h *Host) links() map[peer.ID][]string {
	topics := []string{h.txs.name, h.consensus.name}
	listed := make([][]peer.ID, len(topics))
	for i, t := range topics {
		listed[i] = h.ps.ListPeers(t)
	}
	net := h.host.Network()
	out := map[peer.ID][]string{}
	for _, p := range net.Peers() {
		if p == h.host.ID() || !h.gater.allowed(p) || net.Connectedness(p) != network.Connected {
			continue
		}
		// Known once identify has run on the connection; until then pubsub has not started
		// on the peer either.
		if protos, err := h.host.Peerstore().SupportsProtocols(p, pubsub.GossipSubDefaultProtocols...); err != nil || len(protos) == 0 {
			continue
		}
		var missing []string
		for i, t := range topics {
			if !slices.Contains(listed[i], p) {
				missing = append(missing, t)
			}
		}
		out[p] = missing
	}
	return out
}

// redial dials a reset peer back, in case neither side keeps it as a bootstrap or remembered
// peer (one found by mDNS or the DHT after start); its known addresses are in the peerstore.
func (h *Host) redial(p peer.ID) {
	t := time.NewTimer(linkRedialDelay)
	defer t.Stop()
	select {
	case <-h.ctx.Done():
		return
	case <-t.C:
	}
	if h.host.Network().Connectedness(p) == network.Connected {
		return // its dialer or ours was quicker
	}
	ctx, cancel := context.WithTimeout(network.WithForceDirectDial(h.ctx, "guild link reset"), dialTimeout)
	defer cancel()
	if err := h.host.Connect(ctx, peer.AddrInfo{ID: p}); err != nil && h.ctx.Err() == nil {
		h.log.Debug("redialing a reset peer failed; it or a bootstrap dialer will reconnect", "peer", p, "err", err)
	}
}

// LinkResets counts the connections this host closed because pubsub no longer counted a
// connected peer as subscribed to its topics (see linkcheck.go).
func (h *Host) LinkResets() uint64 { return h.linkResets.Load() }
