// Package p2p owns Guild's libp2p host: identity, the TCP transport, the permissioned connection
// gater, the bootstrap dialer and the gossipsub topics for transactions and consensus messages.
//
// It moves bytes and knows peers; it imports nothing of Guild's. The node injects what it knows
// about the protocol as Validator functions, which run off the node's consensus loop on pubsub's
// validation goroutines and hand the node an already decoded value.
package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
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
)

// Config configures a Host. Key, ChainID and both validators are required.
type Config struct {
	Key ed25519.PrivateKey // node identity
	// Listen holds multiaddrs to listen on, e.g. "/ip4/127.0.0.1/tcp/0". Empty: dial only.
	Listen []string
	// Bootstrap holds full multiaddrs ending in /p2p/<peer id>. They are dialed at start and
	// re-dialed while disconnected. This host's own address may be in the list (a shared list).
	Bootstrap []string
	// AllowedPeers holds the peer IDs allowed to connect, in either direction (permissioned
	// mode); others are refused right after the security handshake. Empty: anyone.
	AllowedPeers []string
	// ChainID names the topics "/guild/<chain>/txs/1" and "/guild/<chain>/consensus/1".
	ChainID string
	// MaxMessageBytes bounds a message's payload; 0 means DefaultMaxMessageBytes. Every node of
	// a chain must use the same value: a message over a neighbour's limit makes that neighbour
	// reset the stream, and the link then stays silently dead in that direction (wireLimit).
	MaxMessageBytes   int
	ValidateTxs       Validator
	ValidateConsensus Validator
	Logger            *slog.Logger // nil -> slog.Default(); pubsub logs with component=pubsub

	// SyncSource serves block sync ("/guild/<chain>/sync/1") to allowed peers; nil: this host
	// only asks (FetchBlocks, SyncStatus).
	SyncSource SyncSource
}

// PeerInfo describes a connected peer.
type PeerInfo struct {
	ID    string
	Addrs []string
}

// Host is a running libp2p host with Guild's two gossip topics. Its methods are safe for
// concurrent use.
type Host struct {
	host     host.Host
	ps       *pubsub.PubSub
	log      *slog.Logger
	maxBytes int

	txs       *gossipTopic
	consensus *gossipTopic
	sync      *syncService

	// ctx lives until Close; cancelling it stops pubsub, the readers and the bootstrap dialer.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

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
	gater, err := newAllowlistGater(cfg.AllowedPeers, log)
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

	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(gater),
		// A permissioned network of known addresses: no relays, no NAT port mapping (off by
		// default), and no AutoNAT probing of our reachability.
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPublic(),
		// libp2p would otherwise register its collectors on the global Prometheus registry.
		libp2p.DisableMetrics(),
	}
	if len(cfg.Listen) > 0 {
		opts = append(opts, libp2p.ListenAddrStrings(cfg.Listen...))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: start libp2p host: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Host{
		host:     lh,
		log:      log,
		maxBytes: maxBytes,
		ctx:      runCtx,
		cancel:   cancel,
	}
	fail := func(err error) (*Host, error) {
		cancel()
		h.wg.Wait()
		_ = lh.Close()
		return nil, err
	}

	h.ps, err = pubsub.NewGossipSub(runCtx, lh, gossipOptions(maxBytes, log)...)
	if err != nil {
		return fail(fmt.Errorf("p2p: start gossipsub: %w", err))
	}
	h.txs, err = h.join(txsTopic(cfg.ChainID), cfg.ValidateTxs)
	if err != nil {
		return fail(err)
	}
	h.consensus, err = h.join(consensusTopic(cfg.ChainID), cfg.ValidateConsensus)
	if err != nil {
		return fail(err)
	}

	h.startSync(cfg, gater)
	if err := h.startBootstrap(bootstrap); err != nil {
		return fail(err)
	}
	log.Info("p2p host started", "id", self, "addrs", h.Addrs(), "bootstrap", len(bootstrap),
		"permissioned", len(cfg.AllowedPeers) > 0)
	return h, nil
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
		// Nothing may be relayed unchecked (DESIGN.md, P2P).
		return fmt.Errorf("%w: ValidateTxs and ValidateConsensus are required", ErrConfig)
	}
	return nil
}

// parseBootstrap groups the bootstrap multiaddrs by peer, leaving out self.
func parseBootstrap(addrs []string, self peer.ID) ([]peer.AddrInfo, error) {
	mas := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: bootstrap address %q: %v", ErrConfig, s, err)
		}
		mas = append(mas, m)
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
		info := PeerInfo{ID: id.String(), Addrs: make([]string, 0, len(addrs))}
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
		h.cancel() // stops pubsub's loops, the readers and the dialer
		h.wg.Wait()
		h.closeErr = h.host.Close()
		h.log.Info("p2p host closed")
	})
	return h.closeErr
}
