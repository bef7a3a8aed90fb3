package p2p

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Flood control (issue #9: a hostile member costs at most its share). A member holding valid keys
// can sign as many messages as it likes, and each one costs every node a decode and a signature
// verification before the node's validator can refuse it. Messages carry no libp2p author
// (StrictNoSign, gossip.go): a consensus message's author is the validator whose index it
// carries (Config.ConsensusAuthor), unverified until the validator runs; a transaction batch
// names none. Three things bound what that costs:
//
//   - Before the validation queue, which all topics and peers share, an RPC inspector charges each
//     incoming message to a bucket per (sending peer, author) and topic, and drops what is over
//     the topic's rate (Config.TxRate, Config.ConsensusRate). One author's flood then fills only its
//     own buckets, never the queue that honest validators' messages wait in, and a sender that
//     claims another's authorship spends only its own link's bucket. Excess that a peer sends of
//     its own messages costs it application score; excess it relays of others' does not, since
//     an honest relayer cannot tell a flood from a burst; nor does the backlog that arrives at
//     once after this process was frozen (freeze.go).
//   - In front of each topic's validator, a bucket per sending peer counts the distinct messages
//     it hands over (duplicates are gone by then). It is keyed by the sender, which the transport
//     authenticates, not by the claimed author, which a forger could name to spend an honest
//     validator's allowance.
//   - The node penalises the author of a correctly signed message that its consensus core refuses
//     for a reason an honest node never gives (Penalize), so a sustained signed flood of junk
//     puts its sender below DisconnectScore within a second or so.

// seenTTL is how long pubsub remembers a message ID to drop its duplicates (pubsub's default is
// 2 minutes), and how long the score keeps its per-message delivery record. Each remembered
// message costs a few hundred bytes, so memory under a flood is rate × seenTTL; gossip only
// advertises messages of the last few heartbeats (seconds), so 30 s still catches every
// duplicate that gossip can produce. A later copy is delivered again, which the node tolerates
// (consensus drops duplicates; the mempool knows its transactions).
const seenTTL = 30 * time.Second

// penaltyHalfLife is how fast a Penalize'd amount fades: a peer disconnected for a burst of
// offences is back above DisconnectScore a few minutes after they stop.
const penaltyHalfLife = time.Minute

// link is a (sending peer, author) pair: who handed us a message, and who signed it.
type link struct{ from, author peer.ID }

// floodControl is the per-topic limiting state of a Host.
type floodControl struct {
	// rpc holds, per topic, the buckets charged before the validation queue.
	rpc map[string]*rateLimiter[link]
	// authors holds, per topic, the buckets charged in front of the validator.
	authors map[string]*rateLimiter[peer.ID]
	// dropped counts, per topic and author, the messages dropped by either limit.
	dropped   map[string]*authorCounts
	penalties *penalties
	// clock, when set, forgives rate excess that arrives as a backlog after this process was
	// frozen (freeze.go).
	clock *clockWatch
	// authorOf names, per topic, the peer accountable for a payload (Config.ConsensusAuthor).
	// Messages carry no libp2p author (StrictNoSign), so without it a message's author is
	// unknown, and it is charged to its sender as its own.
	authorOf map[string]func([]byte) (peer.ID, bool)
	// stale says, per topic, that a payload is for a long-decided height (Config.ConsensusStale):
	// ignored in front of the validator without charging its sender (the node counts them).
	stale map[string]func([]byte) bool
}

func newFloodControl(limits map[string]RateLimit) *floodControl {
	f := &floodControl{
		rpc:       make(map[string]*rateLimiter[link], len(limits)),
		authors:   make(map[string]*rateLimiter[peer.ID], len(limits)),
		dropped:   make(map[string]*authorCounts, len(limits)),
		penalties: &penalties{m: map[peer.ID]*decaying{}},
		authorOf:  map[string]func([]byte) (peer.ID, bool){},
		stale:     map[string]func([]byte) bool{},
	}
	for topic, l := range limits {
		f.rpc[topic] = newRateLimiter[link](l, l)
		f.authors[topic] = newRateLimiter[peer.ID](l, l)
		f.dropped[topic] = &authorCounts{m: map[peer.ID]uint64{}}
	}
	return f
}

// inspectRPC is pubsub's RPC inspector: it runs on pubsub's event loop for every RPC a peer
// sends, before any message in it is queued for validation, and drops the messages over their
// (sender, author) bucket from the RPC. Control messages and subscriptions are left alone.
func (f *floodControl) inspectRPC(from peer.ID, rpc *pubsub.RPC) error {
	msgs := rpc.Publish
	if len(msgs) == 0 {
		return nil
	}
	now := time.Now()
	charge := f.clock == nil || !f.clock.forgiving(now)
	kept := msgs[:0]
	for _, m := range msgs {
		topic := m.GetTopic()
		r := f.rpc[topic]
		if r == nil {
			kept = append(kept, m) // a topic we are not in: pubsub ignores it
			continue
		}
		author := f.author(topic, m)
		if author == "" {
			// Named by nothing: charged as the sender's own, so that a flood of anonymous
			// payloads costs its sender score. Honest nodes publish their own straight to every
			// topic peer (flood publish), so what they relay of others' is little.
			author = from
		}
		if r.allow(link{from: from, author: author}, len(m.GetData()), now, charge) {
			kept = append(kept, m)
			continue
		}
		f.dropped[topic].add(author)
	}
	clear(msgs[len(kept):]) // let the dropped messages go now, not with the RPC
	rpc.Publish = kept
	return nil
}

// author is who is accountable for m: its libp2p author if it has one (a signing network), else
// the one its payload names (authorOf), else "" (unknown: charged to the sender as its own).
func (f *floodControl) author(topic string, m *pb.Message) peer.ID {
	if a := peer.ID(m.GetFrom()); a != "" {
		return a
	}
	if of := f.authorOf[topic]; of != nil {
		if payload, _, ok := openEnvelope(m.GetData()); ok {
			if a, ok := of(payload); ok {
				return a
			}
		}
	}
	return ""
}

// limit puts topic's per-author bucket in front of validate: a message over it is Ignored before
// it costs a decode or a signature check. self's own publications are not limited. A payload the
// topic's stale check finds long decided is Ignored first, uncharged: a peer replaying old
// messages at the bucket's rate would otherwise crowd its own current ones out, and slow every
// height it leads by a retransmission (issue #9, the replay mode: 46 % of the blocks/s).
func (f *floodControl) limit(topic string, self peer.ID, validate Validator) Validator {
	r, dropped := f.authors[topic], f.dropped[topic]
	stale := f.stale[topic]
	me := self.String()
	return func(from string, data []byte) (Verdict, any) {
		if from != me {
			if stale != nil && stale(data) {
				return Ignore, nil
			}
			id, err := peer.Decode(from)
			if err != nil {
				return Reject, nil
			}
			if !r.allow(id, len(data), time.Now(), true) {
				dropped.add(id)
				return Ignore, nil
			}
		}
		return validate(from, data)
	}
}

// penalty is what p loses in application score for flooding, now.
func (f *floodControl) penalty(p peer.ID, now time.Time) float64 {
	var sum float64
	for _, r := range f.rpc {
		// Only excess of p's own messages: relaying someone else's flood is no fault of p's.
		sum += r.penalty(link{from: p, author: p}, now)
		// Not the excess of the limiter in front of the validator: with unsigned gossip it is
		// keyed by the last hop, so it counts what p relays of everyone's messages. A node
		// back from a pause got a burst of its peers' relayed backlog, charged them for it,
		// and cut itself off from every peer for a minute (a 10-minute chaos run: 33 s to
		// the tip, a 16 s stall). An author's own excess is charged by the inspector above.
	}
	return sum + f.penalties.value(p, now)
}

// forget drops the state of peers no longer allowed.
func (f *floodControl) forget(keep func(peer.ID) bool) {
	for topic, r := range f.rpc {
		r.forget(func(l link) bool { return keep(l.from) && keep(l.author) })
		f.authors[topic].forget(keep)
		f.dropped[topic].forget(keep)
	}
	f.penalties.forget(keep)
}

// authorCounts counts dropped messages per author.
type authorCounts struct {
	mu    sync.Mutex
	m     map[peer.ID]uint64
	total uint64
}

func (c *authorCounts) add(p peer.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	// Authors are allowed peers in a permissioned network; on an open host, throwaway authors
	// beyond maxBuckets are counted in the total only.
	if _, ok := c.m[p]; ok || len(c.m) < maxBuckets {
		c.m[p]++
	}
}

func (c *authorCounts) snapshot() (map[string]uint64, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.m))
	for p, n := range c.m {
		out[p.String()] = n
	}
	return out, c.total
}

func (c *authorCounts) forget(keep func(peer.ID) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.m {
		if !keep(p) {
			delete(c.m, p)
		}
	}
}

// penalties are application-score amounts per peer that halve every penaltyHalfLife.
type penalties struct {
	mu sync.Mutex
	m  map[peer.ID]*decaying
}

type decaying struct {
	v    float64
	last time.Time
}

func (d *decaying) at(now time.Time) float64 {
	if dt := now.Sub(d.last); dt > 0 {
		d.v *= math.Exp2(-dt.Seconds() / penaltyHalfLife.Seconds())
		d.last = now
	}
	return d.v
}

func (p *penalties) add(id peer.ID, amount float64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.m[id]
	if d == nil {
		if len(p.m) >= maxBuckets {
			for k, d := range p.m {
				if d.at(now) < 1 {
					delete(p.m, k)
				}
			}
		}
		d = &decaying{last: now}
		p.m[id] = d
	}
	d.v = d.at(now) + amount
}

func (p *penalties) value(id peer.ID, now time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.m[id]; d != nil {
		return d.at(now)
	}
	return 0
}

func (p *penalties) forget(keep func(peer.ID) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.m {
		if !keep(k) {
			delete(p.m, k)
		}
	}
}

// Penalize lowers peerID's gossip score by amount (> 0), decaying by half every minute: for
// offences only the application can see, such as a correctly signed consensus message that the
// core refuses as invalid. Offences that add up past DisconnectScore (about -400 from a score
// that is at most +40 for an honest validator) disconnect the peer and refuse it for the cool-off.
func (h *Host) Penalize(peerID string, amount float64) error {
	id, err := peer.Decode(peerID)
	if err != nil {
		return fmt.Errorf("p2p: penalize %q: %w", peerID, err)
	}
	if amount > 0 && !math.IsInf(amount, 0) {
		h.flood.penalties.add(id, amount, time.Now())
	}
	return nil
}

// ConsensusRateLimited counts the consensus messages dropped because their author exceeded its
// rate, per author's peer ID (up to a bound on distinct authors), and in total.
func (h *Host) ConsensusRateLimited() (byAuthor map[string]uint64, total uint64) {
	return h.flood.dropped[h.consensus.name].snapshot()
}

// quietPubsub is the handler of pubsub's logger: it turns pubsub's warning that the connection
// manager's tag queue is full into a debug line. Pubsub warns once per message it cannot credit
// to a peer's connection tag, which under a flood (or any burst) is hundreds of lines a second
// about a bookkeeping detail no operator can act on; floods are reported by the metrics instead.
type quietPubsub struct{ slog.Handler }

func (q quietPubsub) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && r.Message == "error bumping delivery tag" {
		if !q.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietPubsub) WithAttrs(as []slog.Attr) slog.Handler {
	return quietPubsub{q.Handler.WithAttrs(as)}
}

func (q quietPubsub) WithGroup(name string) slog.Handler {
	return quietPubsub{q.Handler.WithGroup(name)}
}
