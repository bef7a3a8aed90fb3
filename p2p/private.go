package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Private payloads: a request/response stream protocol, "/guild/<chain>/private/1", by which a
// node hands an encrypted payload to the nodes of its recipients, and a node that lacks one asks
// for it by its commitment (issue 14). Payloads never travel by gossip: each goes over a stream
// to one named peer, who decides (PrivateSource) whether that peer may give or get it.
//
// One request per stream. The client writes its request and closes its side; the server answers
// with a status byte, followed for a fetch answered PrivateOK by the payload, and closes.
//
//	push:  kind=1 | commitment [32] | len u32 | payload
//	fetch: kind=2 | commitment [32]
//	reply: status u8 [| len u32 | payload]
//
// p2p checks framing, sizes and rates; what a commitment means, and who is a recipient, is the
// source's business.

// PrivateStatus is a server's answer to a private request.
type PrivateStatus byte

const (
	// PrivateOK: a push was stored (or was already held); a fetch is followed by the payload.
	PrivateOK PrivateStatus = iota
	// PrivateRefused: the asking peer is not a holder's node (or not the sender's).
	PrivateRefused
	// PrivateUnknown: the server does not know the commitment (yet), or no longer holds it.
	PrivateUnknown
	// PrivateInvalid: the payload does not hash to the commitment, or breaks a limit.
	PrivateInvalid
	// PrivateBusy: the peer exceeded its rate, or the server has no free slot; try later.
	PrivateBusy
	privateStatuses
)

func (s PrivateStatus) String() string {
	switch s {
	case PrivateOK:
		return "ok"
	case PrivateRefused:
		return "refused"
	case PrivateUnknown:
		return "unknown"
	case PrivateInvalid:
		return "invalid"
	case PrivateBusy:
		return "busy"
	}
	return fmt.Sprintf("status(%d)", byte(s))
}

// PrivateSource decides and stores for the private protocol. Its methods are called
// concurrently from libp2p's stream goroutines.
type PrivateSource interface {
	// AcceptPrivate checks a payload pushed by peer and stores it.
	AcceptPrivate(peer string, commitment [32]byte, payload []byte) PrivateStatus
	// ServePrivate returns the payload peer asks for, or why not.
	ServePrivate(peer string, commitment [32]byte) ([]byte, PrivateStatus)
}

const (
	// DefaultPrivateMaxBytes bounds a payload when Config.PrivateMaxBytes is 0.
	DefaultPrivateMaxBytes = 1 << 20
	privateKindPush        = 1
	privateKindFetch       = 2
	privateHeader          = 1 + 32
	maxPrivateStreams      = 8
	privateTimeout         = 30 * time.Second
)

// DefaultPrivateRateLimit bounds what one peer may push or fetch: payloads are rare (one per
// private transaction), so this leaves room for catching up after a restart.
var DefaultPrivateRateLimit = RateLimit{MsgsPerSec: 50, BytesPerSec: 16 << 20}

var (
	// ErrPrivateUnavailable: the peer could not be reached or did not answer in time.
	ErrPrivateUnavailable = errors.New("p2p: peer unavailable for private payloads")
	// ErrPrivateResponse: the peer's answer broke the protocol.
	ErrPrivateResponse = errors.New("p2p: invalid private payload response")
)

// PrivateCounts are what a host's private protocol did, for metrics. Indexed by status.
type PrivateCounts struct {
	Pushes  [privateStatuses]uint64 // pushes served, by the status answered
	Fetches [privateStatuses]uint64 // fetches served, by the status answered
}

type privateService struct {
	host     host.Host
	proto    protocol.ID
	source   PrivateSource
	allowed  func(peer.ID) bool
	maxBytes int
	rate     *rateLimiter[peer.ID]
	slots    chan struct{}
	log      *slog.Logger
	pushes   [privateStatuses]atomic.Uint64
	fetches  [privateStatuses]atomic.Uint64
}

func privateProtocol(chainID string) protocol.ID {
	return protocol.ID("/guild/" + chainID + "/private/1")
}

func (h *Host) startPrivate(cfg Config, gater *allowlistGater) {
	maxBytes := cfg.PrivateMaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultPrivateMaxBytes
	}
	h.private = &privateService{
		host:     h.host,
		proto:    privateProtocol(cfg.ChainID),
		source:   cfg.PrivateSource,
		allowed:  gater.allowed,
		maxBytes: maxBytes,
		rate:     newRateLimiter[peer.ID](cfg.PrivateRate, DefaultPrivateRateLimit),
		slots:    make(chan struct{}, maxPrivateStreams),
		log:      h.log,
	}
	if cfg.PrivateSource != nil {
		h.host.SetStreamHandler(h.private.proto, h.private.serve)
	}
}

// PrivateCounts reports what this host's private protocol served.
func (h *Host) PrivateCounts() PrivateCounts {
	var c PrivateCounts
	for i := range c.Pushes {
		c.Pushes[i] = h.private.pushes[i].Load()
		c.Fetches[i] = h.private.fetches[i].Load()
	}
	return c
}

// serve answers one request. Whatever the peer sends, the stream ends and nothing panics.
func (s *privateService) serve(st network.Stream) {
	remote := st.Conn().RemotePeer()
	if !s.allowed(remote) {
		_ = st.Reset()
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("private: serving a request panicked", "peer", remote, "panic", r)
			_ = st.Reset()
		}
	}()
	_ = st.SetDeadline(time.Now().Add(privateTimeout))
	err := s.answer(st, remote)
	if err != nil {
		s.log.Debug("private: request not served", "peer", remote, "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// answer reads one request and writes its answer; the answer is counted by kind and status.
func (s *privateService) answer(st network.Stream, remote peer.ID) error {
	br := bufio.NewReader(st)
	var hdr [privateHeader]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return err
	}
	kind, commitment := hdr[0], [32]byte(hdr[1:])
	reply := func(status PrivateStatus, payload []byte) error {
		// Counted before the answer leaves: a peer that has read it finds it counted.
		switch kind {
		case privateKindPush:
			s.pushes[status].Add(1)
		case privateKindFetch:
			s.fetches[status].Add(1)
		}
		w := bufio.NewWriter(st)
		_ = w.WriteByte(byte(status))
		if status == PrivateOK && payload != nil {
			_ = binary.Write(w, binary.BigEndian, uint32(len(payload)))
			_, _ = w.Write(payload)
		}
		return w.Flush()
	}
	busy := func(n int) bool {
		select {
		case s.slots <- struct{}{}:
		default:
			return true
		}
		if !s.rate.allow(remote, n, time.Now(), false) { // excess costs no gossip score here: the answer is "busy"
			<-s.slots
			return true
		}
		return false
	}
	switch kind {
	case privateKindPush:
		var l [4]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(l[:]))
		if n == 0 || n > s.maxBytes {
			return reply(PrivateInvalid, nil)
		}
		if busy(n) {
			return reply(PrivateBusy, nil)
		}
		defer func() { <-s.slots }()
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return err
		}
		return reply(s.source.AcceptPrivate(remote.String(), commitment, payload), nil)
	case privateKindFetch:
		if busy(0) {
			return reply(PrivateBusy, nil)
		}
		defer func() { <-s.slots }()
		payload, status := s.source.ServePrivate(remote.String(), commitment)
		if status == PrivateOK && (len(payload) == 0 || len(payload) > s.maxBytes) {
			status = PrivateUnknown
		}
		return reply(status, payload)
	}
	return fmt.Errorf("p2p: private request of kind %d", kind)
}

// openPrivate sends req to p and returns the stream to read the answer from.
func (h *Host) openPrivate(ctx context.Context, p string, req ...[]byte) (network.Stream, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	id, err := peer.Decode(p)
	if err != nil {
		return nil, fmt.Errorf("%w: peer %q: %v", ErrPrivateUnavailable, p, err)
	}
	if !h.private.allowed(id) {
		return nil, fmt.Errorf("%w: %s is not an allowed peer", ErrPrivateUnavailable, p)
	}
	st, err := h.host.NewStream(ctx, id, h.private.proto)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPrivateUnavailable, p, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(privateTimeout)
	}
	_ = st.SetDeadline(deadline)
	for _, b := range req {
		if _, err := st.Write(b); err != nil {
			_ = st.Reset()
			return nil, fmt.Errorf("%w: %s: sending: %w", ErrPrivateUnavailable, p, err)
		}
	}
	if err := st.CloseWrite(); err != nil {
		_ = st.Reset()
		return nil, fmt.Errorf("%w: %s: %w", ErrPrivateUnavailable, p, err)
	}
	return st, nil
}

func readPrivateStatus(r io.Reader, p string) (PrivateStatus, error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrPrivateUnavailable, p, err)
	}
	if s := PrivateStatus(b[0]); s < privateStatuses {
		return s, nil
	}
	return 0, fmt.Errorf("%w: status %d", ErrPrivateResponse, b[0])
}

// PushPrivate hands payload, committed to by commitment, to peer p and returns its answer.
func (h *Host) PushPrivate(ctx context.Context, p string, commitment [32]byte, payload []byte) (PrivateStatus, error) {
	if len(payload) == 0 || len(payload) > h.private.maxBytes {
		return 0, fmt.Errorf("p2p: private payload of %d bytes, limit %d", len(payload), h.private.maxBytes)
	}
	hdr := make([]byte, privateHeader+4)
	hdr[0] = privateKindPush
	copy(hdr[1:], commitment[:])
	binary.BigEndian.PutUint32(hdr[privateHeader:], uint32(len(payload)))
	st, err := h.openPrivate(ctx, p, hdr, payload)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return readPrivateStatus(st, p)
}

// FetchPrivate asks peer p for the payload committed to by commitment. The payload comes back
// unverified with PrivateOK; any other status comes with none.
func (h *Host) FetchPrivate(ctx context.Context, p string, commitment [32]byte) ([]byte, PrivateStatus, error) {
	req := make([]byte, privateHeader)
	req[0] = privateKindFetch
	copy(req[1:], commitment[:])
	st, err := h.openPrivate(ctx, p, req)
	if err != nil {
		return nil, 0, err
	}
	defer st.Close()
	br := bufio.NewReader(st)
	status, err := readPrivateStatus(br, p)
	if err != nil || status != PrivateOK {
		return nil, status, err
	}
	var l [4]byte
	if _, err := io.ReadFull(br, l[:]); err != nil {
		return nil, 0, fmt.Errorf("%w: length: %w", ErrPrivateResponse, err)
	}
	n := int(binary.BigEndian.Uint32(l[:]))
	if n == 0 || n > h.private.maxBytes {
		return nil, 0, fmt.Errorf("%w: payload of %d bytes, limit %d", ErrPrivateResponse, n, h.private.maxBytes)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return nil, 0, fmt.Errorf("%w: payload: %w", ErrPrivateResponse, err)
	}
	return payload, PrivateOK, nil
}
