package p2p

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Verdict is a Validator's decision on a message.
type Verdict int

const (
	// Accept delivers the message to the subscriber and relays it.
	Accept Verdict = iota
	// Reject drops the message: it is invalid, and the peer that sent it is at fault (pubsub
	// penalises it once peer scoring is on).
	Reject
	// Ignore drops the message without blaming anyone, e.g. a stale vote: it is neither
	// delivered nor relayed.
	Ignore
	// Deliver hands the message to the subscriber without relaying it (dropped if the
	// subscriber's channel is full): a copy of this node's own message coming back, which the
	// node checks (another process with its key?) but must not pass on as if it sent it again.
	Deliver
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Ignore:
		return "ignore"
	case Deliver:
		return "deliver"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// A Validator decides on one message of a topic before anything is delivered or relayed.
//
// Threading: it runs for every message on pubsub's validation goroutines, concurrently with
// itself and OFF the node's consensus loop, and must be safe for that. There is one exception:
// for a message this host publishes, it runs synchronously inside PublishTxs / PublishConsensus,
// on the caller's goroutine (a Validator that wants to skip work on its own messages can compare
// from with Host.ID()).
//
// from is the peer that handed the message to this host (itself for its own publications):
// messages carry no libp2p author or signature (StrictNoSign), so the payload's own signature is
// what names and authenticates its author, and only the Validator can check it. Pubsub has
// checked that data fits Config.MaxMessageBytes. On Accept the returned value is handed to the subscriber as
// Message.Decoded so the node does not decode twice; on Reject or Ignore it is dropped. A panic
// counts as Reject.
type Validator func(from string, data []byte) (Verdict, any)

// Message is a validated message from another peer.
type Message struct {
	From    string // the peer it came from (not necessarily its author)
	Data    []byte // payload; do not modify
	Decoded any    // what the Validator returned with Accept
}

const (
	// subscriptionBuffer is both pubsub's per-subscription buffer and this package's channel
	// buffer. Pubsub never blocks on a slow subscriber: once its buffer is full it drops.
	subscriptionBuffer = 4096
	// validateQueueSize bounds the messages waiting for a validation worker; beyond it pubsub
	// drops incoming messages (default 32, far too small for bursts of transactions).
	validateQueueSize = 4096
	// peerOutboundQueueSize bounds the RPCs queued to one peer; beyond it pubsub drops (default 32).
	peerOutboundQueueSize = 4096
	// wireOverhead is room above MaxMessageBytes for what pubsub wraps around a payload: author,
	// sequence number, signature, topic name and protobuf framing (~150 bytes plus the topic).
	wireOverhead = 4096
)

// wireLimit is pubsub's limit on a whole RPC. A peer that receives an RPC over its limit resets
// the stream, and pubsub then forgets that peer's subscriptions on the sending side until the
// peers reconnect, so a mismatch silently cuts a link: every node of a chain must use the same
// MaxMessageBytes. The payload limit itself is enforced exactly, in Publish and before the
// Validator runs.
func wireLimit(maxBytes int) int { return maxBytes + wireOverhead + 2*maxChainIDBytes }

// The topics' version is 2 since publications travel in an envelope (seal): a node of an earlier
// version would take an envelope for a malformed payload and penalise its sender, so the two do
// not share a topic. The transactions topic is at 3 since its envelope lists the peers it was
// sent to (version 2 of the envelope), for the same reason.
func txsTopic(chainID string) string       { return "/guild/" + chainID + "/txs/3" }
func consensusTopic(chainID string) string { return "/guild/" + chainID + "/consensus/2" }

func gossipOptions(maxBytes int, log *slog.Logger, topics []string, direct []peer.AddrInfo, sk *scorekeeper, fc *floodControl, tracer pubsub.RawTracer) []pubsub.Option {
	opts := []pubsub.Option{
		pubsub.WithMaxMessageSize(wireLimit(maxBytes)),
		// Every payload is signed by its author (transactions by their senders, consensus
		// messages by their validators, a decision by its certificate's quorum), and the node
		// verifies those signatures: a libp2p signature per message on top only cost a sign and
		// a verify per message per hop. Without it messages carry no author or sequence number,
		// so a message is identified by its content. Every node of a network must agree on this
		// (a signing node rejects unsigned messages).
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(), // no author or sequence number either: StrictNoSign drops those
		pubsub.WithMessageIdFn(contentID),
		// Our own messages go straight to every peer subscribed to the topic, not only to our
		// mesh: one hop, no wait for a mesh that is only (re)built on the 1 s heartbeat.
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false), // permissioned: peers come from configuration only
		pubsub.WithValidateQueueSize(validateQueueSize),
		// Each peer's share of the queue above is bounded before anything enters it (flood.go).
		pubsub.WithAppSpecificRpcInspector(fc.inspectRPC),
		pubsub.WithSeenMessagesTTL(seenTTL),
		pubsub.WithPeerOutboundQueueSize(peerOutboundQueueSize),
		pubsub.WithLogger(slog.New(quietPubsub{log.Handler()}).With("component", "pubsub")),
		pubsub.WithPeerScore(peerScoreParams(topics, sk.appScore), peerScoreThresholds()),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(sk.inspect), scoreInspectPeriod),
		pubsub.WithRawTracer(tracer), // link repair (linkcheck.go)
	}
	// Direct peering only among validators, never for bootstrap peers in general: gossipsub
	// requires it to be reciprocal, and a one-sided entry makes the other side's GRAFT be refused,
	// so that side never relays to us (gossipsub.go, "GRAFT: ignoring request from direct peer").
	// The validator list comes from genesis, which every validator shares, so it is symmetric;
	// observers and other members use the mesh, whose default degree (D=6, Dhi=12) spans a
	// consortium.
	if len(direct) > 0 {
		opts = append(opts, pubsub.WithDirectPeers(direct),
			// Reconnect a direct peer every 10 heartbeats (default 300); bootstrap redials too.
			pubsub.WithDirectConnectTicks(10))
	}
	return opts
}

// contentID is a message's ID: a hash of its topic and data, so that one publication is one
// message however many peers relay it. The data is an envelope (seal) whose nonce makes each
// publication distinct, so a payload published again is a new message.
func contentID(m *pb.Message) string {
	h := sha256.New()
	h.Write([]byte(m.GetTopic()))
	h.Write([]byte{0})
	h.Write(m.GetData())
	return string(h.Sum(nil))
}

// Every publication travels in an envelope: a version byte, then a nonce of this host's own,
// then the payload. A message ID is a hash of the data (contentID), so without the nonce a payload
// published again would be the same message as its first copy: the publisher's own pubsub drops it
// as seen for seenTTL, and so does every peer that received the first copy. That broke
// retransmission: a validator restarted after a view change was first sent could not receive that
// view change again for 30 s, and the chain stalled (the README tour did, on real processes). With
// the nonce, every Publish is a message of its own and relays still drop the copies of it; the
// payload's own signature, not the envelope, is what authenticates it.
//
// On the transactions topic the envelope (version 2) also lists, by tag, the publisher and the
// peers it sent the message to (sentTo), so that a receiver relays it only when it has a peer
// outside that list (relayNeeded). Pubsub relays every message to every direct peer: with n
// validators all connected to one another, each batch crossed (n-1)² links where n-1 carry it to
// everyone, and each duplicate still cost its transport, framing and message-ID hash. A peer the
// publisher is not connected to (a validator or observer that reaches it only through others) is
// not in the list, so its neighbours relay as before. The list is not authenticated and needs
// not be: a publisher that lies about it only keeps its own message from travelling, which it
// could do by not publishing; a copy re-wrapped by anyone else is a different message.
const (
	envelopeVersion = 1
	envelopeSize    = 1 + 8
	// envelopeSentToVersion is version 1 followed by a count byte and that many peer tags.
	envelopeSentToVersion = 2
	// peerTagSize is the length of a peer's tag: the first bytes of the SHA-256 of its ID. A
	// collision can only make a receiver skip a relay to the colliding peer, which then gets the
	// transactions from the publisher or, failing that, by a proposal's fetch.
	peerTagSize = 8
	// maxSentTo bounds the tags in an envelope (well within wireOverhead); a publisher with more
	// topic peers lists the first maxSentTo, and receivers relay to the others.
	maxSentTo = 128
)

// seal wraps a payload in an envelope with this host's next nonce. The nonces start at a random
// point at each start of the process, so a restarted node's publications are new messages to
// peers that remember its previous life's. sentTo, if not nil, makes it a version 2 envelope
// listing those tags (at most maxSentTo).
func (h *Host) seal(payload []byte, sentTo [][peerTagSize]byte) []byte {
	if sentTo == nil {
		b := make([]byte, envelopeSize+len(payload))
		b[0] = envelopeVersion
		binary.BigEndian.PutUint64(b[1:envelopeSize], h.pubNonce.Add(1))
		copy(b[envelopeSize:], payload)
		return b
	}
	sentTo = sentTo[:min(len(sentTo), maxSentTo)]
	head := envelopeSize + 1 + peerTagSize*len(sentTo)
	b := make([]byte, head+len(payload))
	b[0] = envelopeSentToVersion
	binary.BigEndian.PutUint64(b[1:envelopeSize], h.pubNonce.Add(1))
	b[envelopeSize] = byte(len(sentTo))
	for i, tag := range sentTo {
		copy(b[envelopeSize+1+i*peerTagSize:], tag[:])
	}
	copy(b[head:], payload)
	return b
}

// openEnvelope returns the payload of sealed data and, for a version 2 envelope, its tags
// (peerTagSize bytes each; nil for version 1), false if data is not an envelope this version
// reads.
func openEnvelope(data []byte) (payload, sentTo []byte, ok bool) {
	if len(data) < envelopeSize {
		return nil, nil, false
	}
	switch data[0] {
	case envelopeVersion:
		return data[envelopeSize:], nil, true
	case envelopeSentToVersion:
		if len(data) < envelopeSize+1 {
			return nil, nil, false
		}
		head := envelopeSize + 1 + peerTagSize*int(data[envelopeSize])
		if len(data) < head {
			return nil, nil, false
		}
		return data[head:], data[envelopeSize+1 : head], true
	}
	return nil, nil, false
}

// peerTag is p's tag in a sentTo list.
func peerTag(p peer.ID) [peerTagSize]byte {
	sum := sha256.Sum256([]byte(p))
	return [peerTagSize]byte(sum[:peerTagSize])
}

// tagOf is peerTag, remembered per peer.
func (h *Host) tagOf(p peer.ID) [peerTagSize]byte {
	if v, ok := h.tags.Load(p); ok {
		return v.([peerTagSize]byte)
	}
	t := peerTag(p)
	h.tags.Store(p, t)
	return t
}

// sentTo lists the tags of this host and of the topic's peers its publication goes to: pubsub
// floods our own messages to every topic peer that is direct or scores at least
// publishThreshold. A peer whose last known score is anywhere near that threshold is left out, so
// that receivers relay to it rather than count on a copy it may not have been sent.
func (h *Host) sentTo(t *gossipTopic) [][peerTagSize]byte {
	peers := t.topic.ListPeers()
	out := make([][peerTagSize]byte, 0, len(peers)+1)
	out = append(out, h.tagOf(h.host.ID()))
	for _, p := range peers {
		if score, known := h.scores.score(p); known && score < publishThreshold/2 && !h.direct[p] {
			continue
		}
		out = append(out, h.tagOf(p))
	}
	return out
}

// relayNeeded says whether a message that from handed us, whose publisher listed sentTo, should
// be relayed: whether this host is connected to a peer other than from that is not in the list.
// Connected peers are a superset of those pubsub would relay to, so in doubt it relays.
func (h *Host) relayNeeded(from peer.ID, sentTo []byte) bool {
	for _, p := range h.host.Network().Peers() {
		if p == from {
			continue
		}
		tag := h.tagOf(p)
		if !hasTag(sentTo, tag) {
			return true
		}
	}
	return false
}

func hasTag(list []byte, tag [peerTagSize]byte) bool {
	for i := 0; i+peerTagSize <= len(list); i += peerTagSize {
		if [peerTagSize]byte(list[i:i+peerTagSize]) == tag {
			return true
		}
	}
	return false
}

// gossipTopic is one joined topic with its subscription and the channel the node reads.
type gossipTopic struct {
	name  string
	topic *pubsub.Topic
	out   chan Message
	// sentTo: publications list the peers they were sent to, and a message is relayed only to
	// reach a peer outside that list (the transactions topic; see seal).
	sentTo bool
	// joined, on the transactions topic, is signalled (coalesced) each time pubsub starts counting
	// a peer as subscribed (watchJoins).
	joined chan struct{}
}

// join registers the validator for a topic, subscribes, and starts the topic's reader.
func (h *Host) join(name string, validate Validator, sentTo bool) (*gossipTopic, error) {
	t := &gossipTopic{name: name, out: make(chan Message, subscriptionBuffer), sentTo: sentTo, joined: make(chan struct{}, 1)}
	if err := h.ps.RegisterTopicValidator(name, h.wrapValidator(t, validate)); err != nil {
		return nil, fmt.Errorf("p2p: validator for %s: %w", name, err)
	}
	topic, err := h.ps.Join(name)
	if err != nil {
		return nil, fmt.Errorf("p2p: join %s: %w", name, err)
	}
	t.topic = topic
	self := h.host.ID()
	sub, err := topic.Subscribe(
		pubsub.WithBufferSize(subscriptionBuffer),
		// Own publications are filtered before they take room in the buffer (a local publication
		// is received from self; network copies of it are duplicates by content).
		pubsub.WithMessageFilter(func(m *pubsub.Message) bool { return m.ReceivedFrom != self }),
	)
	if err != nil {
		return nil, fmt.Errorf("p2p: subscribe %s: %w", name, err)
	}
	h.wg.Add(1)
	go h.read(sub, t.out)
	if sentTo {
		events, err := topic.EventHandler()
		if err != nil {
			return nil, fmt.Errorf("p2p: peer events of %s: %w", name, err)
		}
		h.wg.Add(1)
		go h.watchJoins(topic, events, t.joined)
	}
	return t, nil
}

// watchJoins signals joined each time a peer joins the topic. A publication reaches only the
// peers pubsub counts as subscribed when it is made, and pubsub says nothing of those it missed:
// a node that publishes before it has heard its peers' subscriptions (just started, or a link
// being re-established, linkcheck.go) reaches no one, and only a publication made after the join
// reaches the newcomer.
func (h *Host) watchJoins(topic *pubsub.Topic, events *pubsub.TopicEventHandler, joined chan<- struct{}) {
	defer h.wg.Done()
	defer events.Cancel()
	for {
		ev, err := events.NextPeerEvent(h.ctx)
		if err != nil {
			return // Close
		}
		if ev.Type != pubsub.PeerJoin || !h.publishable(topic, ev.Peer) {
			continue
		}
		select {
		case joined <- struct{}{}:
		default:
		}
	}
}

// publishable waits, a little, until a publication to topic goes to p: pubsub reports a join
// when the peer's subscription arrives, which can be before its own queue to the peer exists, and
// a publication made then skips the peer. False if it is not publishable within
// joinPoll*joinPolls (it left, say) or the host is closing.
func (h *Host) publishable(topic *pubsub.Topic, p peer.ID) bool {
	tick := time.NewTicker(joinPoll)
	defer tick.Stop()
	for range joinPolls {
		if slices.Contains(topic.ListPeers(), p) {
			return true
		}
		select {
		case <-h.ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return false
}

// A join is reported once the joining peer is publishable, polled every joinPoll up to joinPolls
// times.
const (
	joinPoll  = 10 * time.Millisecond
	joinPolls = 200
)

// wrapValidator adapts a Validator to pubsub, enforcing the payload limit and turning a panic
// into Reject. On a sentTo topic, an accepted message that no peer of ours needs from us is
// handed to the node here and Ignored, which is pubsub's only way not to relay it (an ignored
// message costs its sender nothing).
func (h *Host) wrapValidator(t *gossipTopic, validate Validator) pubsub.ValidatorEx {
	topic := t.name
	return func(_ context.Context, _ peer.ID, msg *pubsub.Message) (result pubsub.ValidationResult) {
		// Messages carry no libp2p author (StrictNoSign): the peer that handed it to us answers
		// for it here; the payload's own signature names its author to the node's validator.
		from := msg.ReceivedFrom
		if from != h.host.ID() && !h.gater.allowed(from) {
			h.log.Debug("message from an author not allowed rejected", "topic", topic, "from", from)
			return pubsub.ValidationReject
		}
		payload, sentTo, ok := openEnvelope(msg.Data)
		if !ok {
			h.log.Debug("message without an envelope rejected", "topic", topic, "from", from, "bytes", len(msg.Data))
			return pubsub.ValidationReject
		}
		if len(payload) > h.maxBytes {
			h.log.Debug("oversized message rejected", "topic", topic, "from", from, "bytes", len(payload))
			return pubsub.ValidationReject
		}
		defer func() {
			if r := recover(); r != nil {
				h.log.Error("validator panicked; message rejected", "topic", topic, "from", from,
					"panic", r, "stack", string(debug.Stack()))
				result = pubsub.ValidationReject
			}
		}()
		verdict, decoded := validate(from.String(), payload)
		switch verdict {
		case Accept:
			if t.sentTo && sentTo != nil && from != h.host.ID() && !h.relayNeeded(from, sentTo) {
				// Never blocks pubsub's validation workers: with the node's channel full the
				// message takes pubsub's own way (delivered through the subscription, relayed).
				select {
				case t.out <- Message{From: from.String(), Data: payload, Decoded: decoded}:
					h.relaysSkipped.Add(1)
					return pubsub.ValidationIgnore
				default:
				}
			}
			msg.ValidatorData = decoded
			return pubsub.ValidationAccept
		case Reject:
			return pubsub.ValidationReject
		case Ignore:
			return pubsub.ValidationIgnore
		case Deliver:
			select {
			case t.out <- Message{From: from.String(), Data: payload, Decoded: decoded}:
			default:
			}
			return pubsub.ValidationIgnore
		}
		// A bug of ours, not the sender's: drop without blaming the peer, as pubsub does.
		h.log.Error("validator returned an unknown verdict; message ignored", "topic", topic, "verdict", verdict)
		return pubsub.ValidationIgnore
	}
}

// read moves validated messages from a subscription to the node's channel. When that channel is
// full it blocks, and pubsub's own buffer absorbs the next subscriptionBuffer messages before it
// starts dropping.
func (h *Host) read(sub *pubsub.Subscription, out chan<- Message) {
	defer h.wg.Done()
	defer sub.Cancel()
	for {
		msg, err := sub.Next(h.ctx)
		if err != nil {
			return // Close, or pubsub shut down
		}
		payload, _, _ := openEnvelope(msg.Data) // the validator refused data that is not an envelope
		m := Message{From: msg.ReceivedFrom.String(), Data: payload, Decoded: msg.ValidatorData}
		select {
		case out <- m:
		case <-h.ctx.Done():
			return
		}
	}
}

// Txs delivers validated transaction messages from other peers (never this host's own). The
// channel is never closed; stop reading on your own shutdown signal.
func (h *Host) Txs() <-chan Message { return h.txs.out }

// Consensus delivers validated consensus messages from other peers (never this host's own). The
// channel is never closed; stop reading on your own shutdown signal.
func (h *Host) Consensus() <-chan Message { return h.consensus.out }

// TxPeersJoined is signalled (without blocking, several joins coalesced into one signal) each time
// a peer joins the transactions topic: from then on PublishTxs reaches it, but nothing published
// before did. The channel is never closed.
func (h *Host) TxPeersJoined() <-chan struct{} { return h.txs.joined }

// TxPeers is how many peers the transactions topic has now: those a PublishTxs made now reaches
// directly. Zero means a publication reaches no one, even with peers connected.
func (h *Host) TxPeers() int { return len(h.txs.topic.ListPeers()) }

// PublishTxs signs data and sends it to every peer subscribed to the transactions topic, after
// this host's own ValidateTxs accepts it (ErrRejected otherwise).
func (h *Host) PublishTxs(ctx context.Context, data []byte) error {
	return h.publish(ctx, h.txs, data)
}

// PublishConsensus signs data and sends it to every peer subscribed to the consensus topic, after
// this host's own ValidateConsensus accepts it (ErrRejected otherwise).
func (h *Host) PublishConsensus(ctx context.Context, data []byte) error {
	return h.publish(ctx, h.consensus, data)
}

func (h *Host) publish(ctx context.Context, t *gossipTopic, data []byte) error {
	if len(data) > h.maxBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(data), h.maxBytes)
	}
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	var sentTo [][peerTagSize]byte
	if t.sentTo {
		sentTo = h.sentTo(t)
	}
	err := t.topic.Publish(ctx, h.seal(data, sentTo))
	if err == nil {
		return nil
	}
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	var verr pubsub.ValidationError
	if errors.As(err, &verr) {
		return fmt.Errorf("%w: %s: %s", ErrRejected, t.name, verr.Reason)
	}
	return fmt.Errorf("p2p: publish %s: %w", t.name, err)
}
