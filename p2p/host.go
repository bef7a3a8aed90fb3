// Package p2p owns Guild's libp2p host: identity, the TCP and QUIC transports, the permissioned
// connection gater, discovery (bootstrap dialer, mDNS, a remembered address book) and the
// gossipsub topics for transactions and consensus messages, with peer scoring and rate limits.
//
// It moves bytes and knows peers; it imports nothing of Guild's. The node injects what it knows
// about the protocol as Validator functions, which run off the node's consensus loop on pubsub's
// validation goroutines and hand the node an already decoded value.
package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// DefaultMaxMessageBytes is the largest pubsub payload accepted when Config.MaxMessageBytes is 0.
const DefaultMaxMessageBytes = 8 << 20

// maxChainIDBytes bounds the chain ID, which is part of every topic name and so of every message.
const maxChainIDBytes = 256

var (
	// ErrClosed is returned by operations on a Host after Close.
	ErrClosed = errors.New("p2p: host closed")
	// ErrMessageTooLarge is returned when a payload exceeds Config.MaxMessageBytes.
	ErrMessageTooLarge = errors.New("p2p: message too large")
	// ErrRejected is returned by a publish that this host's own validator did not Accept.
	ErrRejected = errors.New("p2p: message rejected by own validator")
	// ErrConfig is wrapped by every configuration error New returns.
	ErrConfig = errors.New("p2p: invalid config")
	// ErrNotPermissioned is returned by SetAllowedPeers on a host started without an allowlist.
	ErrNotPermissioned = errors.New("p2p: host is not permissioned")
)

// Peer roles reported by Peers.
const (
	RoleMember   = "member"
	RoleObserver = "observer"
)

// Config configures a Host. Key, ChainID and both validators are required.
type Config struct {
	Key ed25519.PrivateKey // node identity
	// Listen holds multiaddrs to listen on, e.g. "/ip4/127.0.0.1/tcp/0" or
	// "/ip4/127.0.0.1/udp/0/quic-v1". Empty: dial only.
	Listen []string
	// Announce, when set, are the addresses this host tells peers it can be reached at (identify,
	// mDNS, Addrs) instead of its listen addresses: a public address in front of a NAT, say.
	Announce []string
	// Bootstrap holds full multiaddrs ending in /p2p/<peer id>. They are dialed at start and
	// re-dialed while disconnected. This host's own address may be in the list (a shared list).
	Bootstrap []string
	// AllowedPeers holds the peer IDs of members allowed to connect, in either direction
	// (permissioned mode); others are refused right after the security handshake. SetAllowedPeers
	// replaces it. Empty, with no Observers: anyone.
	AllowedPeers []string
	// Observers are further peer IDs allowed to connect, kept across SetAllowedPeers.
	Observers []string
	// Validators are the peer IDs of the validators' nodes. They get an application score in
	// gossipsub, and if this host is one of them, it peers directly with the others (every
	// validator relays to every other, outside the mesh). All validators must use the same list.
	Validators []string
	// MDNS discovers peers on the local network (or machine) by multicast DNS; only allowed peers
	// are dialed.
	MDNS bool
	// DHT joins a Kademlia DHT private to the chain and looks up allowed peers that are not
	// connected, so members need not list each other's addresses (see dht.go). On an open host
	// (no allowlist) there is no one to look up.
	DHT bool
	// AddrBook is a file where the addresses learned for allowed peers are kept across restarts,
	// to be redialed at start. Empty: nothing is remembered.
	AddrBook string
	// CoolOff is how long a peer disconnected for a low gossip score is refused; 0 means
	// DefaultCoolOff.
	CoolOff time.Duration
	// TxRate limits each author on the transactions topic; zero fields take DefaultTxRateLimit.
	TxRate RateLimit
	// ConsensusRate limits each author on the consensus topic; zero fields take
	// DefaultConsensusRateLimit.
	ConsensusRate RateLimit
	// ChainID names the topics "/guild/<chain>/txs/3" and "/guild/<chain>/consensus/2".
	ChainID string
	// MaxMessageBytes bounds a message's payload; 0 means DefaultMaxMessageBytes. Every node of
	// a chain must use the same value: a message over a neighbour's limit makes that neighbour
	// reset the stream, and the link then stays silently dead in that direction (wireLimit).
	MaxMessageBytes   int
	ValidateTxs       Validator
	ValidateConsensus Validator
	// ConsensusAuthor, if set, names the peer accountable for a consensus payload from the
	// payload itself (its signer's node), cheaply and before any verification; false when the
	// payload names none (then the peer that sent it is). Messages carry no libp2p author or
	// signature (StrictNoSign: the payloads are signed by their authors), so the flood
	// inspector charges (sender, this author) instead.
	ConsensusAuthor func(data []byte) (peer.ID, bool)
	// ConsensusStale, if set, says cheaply (without verifying anything) that a consensus payload
	// is one the validator will ignore anyway: for a height decided long ago. Such a payload is
	// ignored before the sending peer's rate bucket is charged, so that old messages replayed by
	// a hostile peer, which cost only that peek, do not spend the allowance its own current
	// messages need, and what it replays of others' is not relayed.
	ConsensusStale func(data []byte) bool
	Logger         *slog.Logger // nil -> slog.Default(); pubsub logs with component=pubsub

	// SyncSource serves block sync ("/guild/<chain>/sync/1") to allowed peers; nil: this host
	// only asks (FetchBlocks, SyncStatus).
	SyncSource SyncSource
	// PrivateSource serves private payloads ("/guild/<chain>/private/1", private.go); nil: this
	// host only pushes and fetches.
	PrivateSource PrivateSource
	// PrivateMaxBytes bounds one private payload; 0 means DefaultPrivateMaxBytes.
	PrivateMaxBytes int
	// PrivateRate limits each peer's private requests; zero fields take DefaultPrivateRateLimit.
	PrivateRate RateLimit
	// SnapshotSource serves state sync ("/guild/<chain>/snapshot/1") to allowed peers; nil:
	// this host only asks (SnapshotOffer, SnapshotChunk).
	SnapshotSource SnapshotSource
	// TxSource serves transactions by hash ("/guild/<chain>/txs-by-hash/1") to allowed peers;
	// nil: this host only asks (FetchTxs).
	TxSource TxSource
	// FetchTxMaxBytes is the largest transaction served or accepted by tx fetch; 0 means
	// DefaultFetchTxBytes.
	FetchTxMaxBytes int
	// FetchRate limits the tx fetch requests each peer may make of this host; zero fields take
	// DefaultFetchRateLimit (BytesPerSec counts request bytes, 32 per hash).
	FetchRate RateLimit
}

// PeerInfo describes a connected peer.
type PeerInfo struct {
	ID    string
	Addrs []string
	// Latency is libp2p's moving average of round trips to the peer (0: not measured yet).
	Latency time.Duration
	// Score is the peer's gossipsub score, as of the last scoring round (HasScore false: none yet).
	Score    float64
	HasScore bool
	// Role is RoleMember, RoleObserver, or "" on a host without an allowlist.
	Role string
	// Validator: the peer is in Config.Validators.
	Validator bool
}

// Host is a running libp2p host with Guild's two gossip topics. Its methods are safe for
// concurrent use.
type Host struct {
	host     host.Host
	ps       *pubsub.PubSub
	log      *slog.Logger
	maxBytes int
	gater    *allowlistGater
	scores   *scorekeeper
	flood    *floodControl
	book     *addrBook
	mdns     interface{ Close() error }
	dht      *dht.IpfsDHT

	// scoreDrops counts peers disconnected for their score.
	scoreDrops atomic.Uint64
	// linkResets counts connections closed because pubsub lost a connected peer's subscriptions.
	linkResets atomic.Uint64
	// pubNonce is the last nonce sealed into a publication (gossip.go, seal).
	pubNonce atomic.Uint64
	// peerEvents carries connectedness changes to PeerEvents' reader (peerevents.go).
	peerEvents        chan PeerEvent
	peerEventsDropped atomic.Uint64
	// relaysSkipped counts transaction messages delivered without relaying (gossip.go).
	relaysSkipped atomic.Uint64
	// tags remembers peer tags (gossip.go, tagOf): peer.ID -> [peerTagSize]byte.
	tags sync.Map
	// tracer is pubsub's tracer (linkcheck.go), which also counts duplicates.
	tracer *linkTracer
	// direct is the set of direct peers (the other validators, on a validator); read-only.
	direct map[peer.ID]bool

	txs       *gossipTopic
	consensus *gossipTopic
	sync      *syncService
	private   *privateService
	snapshots *snapshotService
	fetch     *fetchService

	// ctx lives until Close; cancelling it stops pubsub, the readers and the bootstrap dialer.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// bgMu guards starting background work after New (discovery callbacks) against Close.
	bgMu   sync.Mutex
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// New starts a host: it listens, joins both topics, and starts dialing the bootstrap peers in
// the background (New does not wait for any connection). ctx is used only while New runs; the
// host runs until Close.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	maxBytes := cfg.MaxMessageBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxMessageBytes
	}

	key, err := libp2pKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("p2p: peer ID: %w", err)
	}
	gater, err := newAllowlistGater(cfg.AllowedPeers, cfg.Observers, log)
	if err != nil {
		return nil, err
	}
	validators, err := decodePeerIDs("validator", cfg.Validators)
	if err != nil {
		return nil, err
	}
	bootstrap, err := parseBootstrap(cfg.Bootstrap, self)
	if err != nil {
		return nil, err
	}
	for _, pi := range bootstrap {
		if !gater.allowed(pi.ID) {
			log.Warn("bootstrap peer is not in AllowedPeers; it will never connect", "peer", pi.ID)
		}
	}
	announce, err := parseAddrs("announce", cfg.Announce)
	if err != nil {
		return nil, err
	}
	book, err := loadAddrBook(cfg.AddrBook)
	if err != nil {
		return nil, err
	}
	coolOff := cfg.CoolOff
	if coolOff == 0 {
		coolOff = DefaultCoolOff
	}

	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		// Over TCP the first of these that both sides speak secures the connection; QUIC has TLS
		// built in.
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(gater),
		// A permissioned network of known addresses: no relays, no NAT port mapping (off by
		// default), and no AutoNAT probing of our reachability.
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPublic(),
		// Black-hole detection would stop dialing UDP (QUIC) after a few failed dials, which in a
		// small network of known members is just a member that is down.
		libp2p.UDPBlackHoleSuccessCounter(nil),
		libp2p.IPv6BlackHoleSuccessCounter(nil),
		// libp2p would otherwise register its collectors on the global Prometheus registry.
		libp2p.DisableMetrics(),
		libp2p.SwarmOpts(swarm.WithDialRanker(tcpFirst)),
	}
	if len(cfg.Listen) > 0 {
		opts = append(opts, libp2p.ListenAddrStrings(cfg.Listen...))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	if len(announce) > 0 {
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: start libp2p host: %w", err)
	}
	if err := checkListening(lh, cfg.Listen, log); err != nil {
		_ = lh.Close()
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Host{
		host:       lh,
		log:        log,
		maxBytes:   maxBytes,
		gater:      gater,
		book:       book,
		peerEvents: make(chan PeerEvent, peerEventBuffer),
		ctx:        runCtx,
		cancel:     cancel,
	}
	h.scores = &scorekeeper{h: h, coolOff: coolOff, validators: validators}
	var start [8]byte
	if _, err := rand.Read(start[:]); err != nil {
		_ = lh.Close()
		cancel()
		return nil, fmt.Errorf("p2p: publication nonce: %w", err)
	}
	h.pubNonce.Store(binary.BigEndian.Uint64(start[:]))
	fail := func(err error) (*Host, error) {
		h.shutdown()
		return nil, err
	}

	topics := []string{txsTopic(cfg.ChainID), consensusTopic(cfg.ChainID)}
	h.flood = newFloodControl(map[string]RateLimit{
		topics[0]: withDefaults(cfg.TxRate, DefaultTxRateLimit),
		topics[1]: withDefaults(cfg.ConsensusRate, DefaultConsensusRateLimit),
	})
	if cfg.ConsensusAuthor != nil {
		h.flood.authorOf[topics[1]] = cfg.ConsensusAuthor
	}
	if cfg.ConsensusStale != nil {
		h.flood.stale[topics[1]] = cfg.ConsensusStale
	}
	h.flood.clock = newClockWatch(h.log, time.Now())
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.flood.clock.run(runCtx)
	}()
	var direct []peer.AddrInfo
	h.direct = map[peer.ID]bool{}
	if _, isValidator := validators[self]; isValidator {
		for id := range validators {
			if id != self {
				direct = append(direct, peer.AddrInfo{ID: id})
				h.direct[id] = true
			}
		}
	}
	tracer := &linkTracer{net: lh.Network, events: make(chan peer.ID, 64), txsTopic: topics[0],
		consTopic: topics[1], consDups: make(chan Message, consensusDuplicatesBuffer)}
	h.tracer = tracer
	h.ps, err = pubsub.NewGossipSub(runCtx, lh, gossipOptions(maxBytes, log, topics, direct, h.scores, h.flood, tracer)...)
	if err != nil {
		return fail(fmt.Errorf("p2p: start gossipsub: %w", err))
	}
	h.txs, err = h.join(topics[0], h.flood.limit(topics[0], self, cfg.ValidateTxs), true)
	if err != nil {
		return fail(err)
	}
	h.consensus, err = h.join(topics[1], h.flood.limit(topics[1], self, cfg.ValidateConsensus), false)
	if err != nil {
		return fail(err)
	}

	h.wg.Add(1)
	go h.runLinkCheck(tracer.events)
	h.startSync(cfg, gater)
	h.startPrivate(cfg, gater)
	h.startSnapshots(cfg, gater)
	h.startFetch(cfg, gater)
	if err := h.watchIdentify(); err != nil {
		return fail(err)
	}
	if err := h.startPinger(); err != nil {
		return fail(err)
	}
	if err := h.startPeerEvents(); err != nil {
		return fail(err)
	}
	h.closeOthersWithLastTCP()
	// Remembered members are kept connected like bootstrap peers; a configured address comes
	// first, remembered ones are added to it.
	keep := mergeAddrInfos(bootstrap, book.infos(func(p peer.ID) bool { return p != self && gater.allowed(p) }))
	if err := h.startBootstrap(keep); err != nil {
		return fail(err)
	}
	if cfg.MDNS {
		if err := h.startMDNS(cfg.ChainID); err != nil {
			return fail(err)
		}
	}
	if cfg.DHT {
		if err := h.startDHT(cfg.ChainID, keep); err != nil {
			return fail(err)
		}
	}
	log.Info("p2p host started", "id", self, "addrs", h.Addrs(), "bootstrap", len(bootstrap),
		"remembered", len(keep)-len(bootstrap), "permissioned", !gater.open, "mdns", cfg.MDNS, "dht", cfg.DHT,
		"direct_peers", len(direct))
	return h, nil
}

func parseAddrs(what string, addrs []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s address %q: %v", ErrConfig, what, s, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// mergeAddrInfos adds more's peers and addresses to base.
func mergeAddrInfos(base, more []peer.AddrInfo) []peer.AddrInfo {
	idx := make(map[peer.ID]int, len(base))
	for i, pi := range base {
		idx[pi.ID] = i
	}
	for _, pi := range more {
		i, ok := idx[pi.ID]
		if !ok {
			idx[pi.ID] = len(base)
			base = append(base, pi)
			continue
		}
		for _, a := range pi.Addrs {
			if !slices.ContainsFunc(base[i].Addrs, a.Equal) {
				base[i].Addrs = append(base[i].Addrs, a)
			}
		}
	}
	return base
}

func (cfg *Config) check() error {
	switch {
	case len(cfg.Key) != ed25519.PrivateKeySize:
		return fmt.Errorf("%w: Key must be an ed25519 private key", ErrConfig)
	case cfg.ChainID == "" || len(cfg.ChainID) > maxChainIDBytes:
		return fmt.Errorf("%w: ChainID must be 1 to %d bytes", ErrConfig, maxChainIDBytes)
	case cfg.MaxMessageBytes < 0:
		return fmt.Errorf("%w: negative MaxMessageBytes", ErrConfig)
	case cfg.ValidateTxs == nil || cfg.ValidateConsensus == nil:
		// Nothing may be relayed unchecked (docs/protocol.md, gossip).
		return fmt.Errorf("%w: ValidateTxs and ValidateConsensus are required", ErrConfig)
	}
	return nil
}

// parseBootstrap groups the bootstrap multiaddrs by peer, leaving out self.
func parseBootstrap(addrs []string, self peer.ID) ([]peer.AddrInfo, error) {
	mas, err := parseAddrs("bootstrap", addrs)
	if err != nil {
		return nil, err
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap addresses must end in /p2p/<peer id>: %v", ErrConfig, err)
	}
	return slices.DeleteFunc(infos, func(pi peer.AddrInfo) bool { return pi.ID == self }), nil
}

// ID is this host's peer ID.
func (h *Host) ID() string { return h.host.ID().String() }

// Addrs gives the addresses this host listens on, each ending in /p2p/<id>, ready for another
// node's Config.Bootstrap.
func (h *Host) Addrs() []string {
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.host.ID(), Addrs: h.host.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, len(full))
	for i, a := range full {
		out[i] = a.String()
	}
	return out
}

// Peers lists the connected peers, sorted by ID, with the addresses they listen on (as told by
// identify) or, until those are known, the addresses of the connections.
func (h *Host) Peers() []PeerInfo {
	net := h.host.Network()
	ids := net.Peers()
	out := make([]PeerInfo, 0, len(ids))
	for _, id := range ids {
		addrs := h.host.Peerstore().Addrs(id)
		if len(addrs) == 0 {
			for _, c := range net.ConnsToPeer(id) {
				addrs = append(addrs, c.RemoteMultiaddr())
			}
		}
		info := PeerInfo{
			ID:      id.String(),
			Addrs:   make([]string, 0, len(addrs)),
			Latency: h.host.Peerstore().LatencyEWMA(id),
			Role:    h.gater.role(id),
		}
		info.Score, info.HasScore = h.scores.score(id)
		_, info.Validator = h.scores.validators[id]
		for _, a := range addrs {
			info.Addrs = append(info.Addrs, a.String())
		}
		slices.Sort(info.Addrs)
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Close stops the readers and the bootstrap dialer, leaves gossipsub and closes the libp2p host.
// It is idempotent; every call returns the first call's result. The Txs and Consensus channels
// are not closed.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.closeErr = h.shutdown()
		h.log.Info("p2p host closed")
	})
	return h.closeErr
}

func (h *Host) shutdown() error {
	h.bgMu.Lock()
	h.closed = true
	svc := h.mdns // refreshMDNS swaps it under bgMu, and closes its own once closed is set
	h.bgMu.Unlock()
	if svc != nil {
		_ = svc.Close()
	}
	if h.dht != nil {
		_ = h.dht.Close()
	}
	h.cancel() // stops pubsub's loops, the readers and the dialer
	h.wg.Wait()
	return h.host.Close()
}

// goBackground runs f on a goroutine that Close waits for, unless the host is closing.
func (h *Host) goBackground(f func()) bool {
	h.bgMu.Lock()
	defer h.bgMu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
	return true
}

// SetAllowedPeers replaces the members allowed to connect (observers stay), e.g. when governance
// changes the validator set, and closes the connections of peers no longer allowed.
func (h *Host) SetAllowedPeers(ids []string) error {
	if h.gater.open {
		return ErrNotPermissioned
	}
	m, err := decodePeerIDs("allowed peer", ids)
	if err != nil {
		return err
	}
	h.gater.setMembers(m)
	h.flood.forget(h.gater.allowed)
	h.fetch.rate.forget(h.gater.allowed)
	if err := h.book.prune(h.gater.allowed); err != nil {
		h.log.Warn("saving the address book", "err", err)
	}
	for _, p := range h.host.Network().Peers() {
		if !h.gater.allowed(p) {
			h.log.Info("disconnecting a peer no longer allowed", "peer", p)
			_ = h.host.Network().ClosePeer(p)
		}
	}
	return nil
}

// LocalFreezes counts the times this process was seen not running for a second or more (paused,
// suspended, starved of CPU); see freeze.go.
func (h *Host) LocalFreezes() uint64 { return h.flood.clock.freezes.Load() }

// ScoreDisconnects counts the peers this host disconnected for a low gossip score.
func (h *Host) ScoreDisconnects() uint64 { return h.scoreDrops.Load() }

// TxRelaysSkipped counts the transaction messages from peers that this host delivered without
// relaying them, because the publisher had sent them to every other peer of this host.
func (h *Host) TxRelaysSkipped() uint64 { return h.relaysSkipped.Load() }

// ConsensusDuplicates delivers the later copies of consensus-topic messages, which pubsub drops
// (the first copy went to the topic's validator and Consensus): From is the peer the copy came
// from, Decoded is nil, and nothing in it is validated. Copies are dropped while the channel is
// full. The channel is never closed.
func (h *Host) ConsensusDuplicates() <-chan Message { return h.tracer.consDups }

// consensusDuplicatesBuffer bounds the duplicate copies waiting for the node.
const consensusDuplicatesBuffer = 256

// DuplicateMessages counts the copies of gossip messages this host received after the first, per
// topic: the cost of relaying, dropped by message ID.
func (h *Host) DuplicateMessages() (txs, consensus uint64) {
	return h.tracer.dupTxs.Load(), h.tracer.dupOther.Load()
}

// TxMessagesDropped counts the transaction messages pubsub dropped on its own, indexed by the
// TxDrop reasons (TxDropReasons names them).
func (h *Host) TxMessagesDropped() (out [numTxDropReasons]uint64) {
	for i := range out {
		out[i] = h.tracer.txDrops[i].Load()
	}
	return out
}

// TxRateLimited counts the transaction messages dropped because their author exceeded its rate.
func (h *Host) TxRateLimited() uint64 {
	_, total := h.flood.dropped[h.txs.name].snapshot()
	return total
}
