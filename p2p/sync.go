package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Block sync: a request/response stream protocol, "/guild/<chain>/sync/1", by which a node that is
// behind fetches committed blocks with their certificates from any allowed peer (issue #5).
//
// One request per stream. The client writes a fixed-size request and closes its side; the server
// answers and closes. A status request is answered with the server's height (8 bytes, big
// endian). A blocks request is answered with up to max items, each
//
//	height u64 | len u32 | block | len u32 | certificate
//
// at consecutive heights from the requested one, and the stream's end marks the last. p2p moves
// these bytes and checks their framing and limits; the node verifies what they mean.

const (
	// MaxSyncBlocks is the most blocks one request may ask for; a server answers with fewer.
	MaxSyncBlocks = 256
	// DefaultSyncResponseBytes is the response size a client asks for when it does not say.
	DefaultSyncResponseBytes = 16 << 20
	// MaxSyncCertificateBytes bounds one encoded certificate.
	MaxSyncCertificateBytes = 1 << 20
	// maxSyncStreams bounds the sync requests a host serves at once; more are reset.
	maxSyncStreams = 16
	// syncRequestTimeout bounds the wait for a request once a stream is open.
	syncRequestTimeout = 5 * time.Second
	// syncResponseTimeout bounds writing a whole response, so a peer that reads slowly on purpose
	// does not hold a server's stream and memory.
	syncResponseTimeout = 30 * time.Second
	// DefaultSyncTimeout is a client request's deadline when its context has none.
	DefaultSyncTimeout = 20 * time.Second

	syncKindStatus        byte = 1
	syncKindBlocks        byte = 2
	syncRequestBytes           = 1 + 8 + 4 + 4
	syncItemHeader             = 8 + 4
	syncStatusReplyLength      = 8
)

var (
	// ErrSyncResponse is a sync response that breaks the protocol: wrong framing, heights out of
	// order, over the limits asked for. The peer that sent it is at fault.
	ErrSyncResponse = errors.New("p2p: invalid sync response")
	// ErrSyncRequest is a sync request that breaks the protocol.
	ErrSyncRequest = errors.New("p2p: invalid sync request")
	// ErrSyncUnavailable is returned by the client functions when this host serves no sync
	// protocol peer, e.g. the peer is not connected or does not speak it.
	ErrSyncUnavailable = errors.New("p2p: peer unavailable for sync")
	// ErrSyncBroken is a response cut off by a reset stream or a closed connection: a server
	// with no free slot resets, a peer restarts, a link is reset (linkcheck.go). It says
	// nothing about the peer's honesty, unlike a response that ends cleanly in mid-item.
	ErrSyncBroken = errors.New("p2p: sync stream broken")
)

// SyncedBlock is one committed block as block sync carries it: its bytes and its certificate's
// bytes, both opaque to p2p.
type SyncedBlock struct {
	Height      uint64
	Block       []byte
	Certificate []byte
}

// size is what the item counts against a response's byte budget.
func (b *SyncedBlock) size() int { return len(b.Block) + len(b.Certificate) }

// SyncSource is what a host serves block sync from. Its methods are called concurrently, from
// libp2p's stream goroutines, and must be safe for that.
type SyncSource interface {
	// SyncHeight is the height of the last block the source can serve.
	SyncHeight() uint64
	// SyncBlocks returns stored blocks at consecutive heights from `from`: at most max of them,
	// and no more bytes (blocks plus certificates) than maxBytes, except that the first block is
	// returned whatever its size. Fewer or none when it has fewer.
	SyncBlocks(from uint64, max, maxBytes int) ([]SyncedBlock, error)
}

func syncProtocol(chainID string) protocol.ID {
	return protocol.ID("/guild/" + chainID + "/sync/1")
}

// syncService serves and asks for blocks on one host.
type syncService struct {
	host     host.Host
	proto    protocol.ID
	source   SyncSource // nil: this host asks but does not serve
	allowed  func(peer.ID) bool
	maxBlock int // largest block accepted or served
	slots    chan struct{}
	log      *slog.Logger
}

// startSync registers the sync protocol's handler when cfg has a source. Clients work either way.
func (h *Host) startSync(cfg Config, gater *allowlistGater) {
	h.sync = &syncService{
		host:     h.host,
		proto:    syncProtocol(cfg.ChainID),
		source:   cfg.SyncSource,
		allowed:  gater.allowed,
		maxBlock: h.maxBytes,
		slots:    make(chan struct{}, maxSyncStreams),
		log:      h.log,
	}
	if cfg.SyncSource != nil {
		h.host.SetStreamHandler(h.sync.proto, h.sync.serve)
	}
}

// serve answers one request. Whatever the peer sends, the stream ends and nothing panics.
func (s *syncService) serve(st network.Stream) {
	remote := st.Conn().RemotePeer()
	if !s.allowed(remote) {
		_ = st.Reset() // the gater already refuses strangers; this guards a gater change
		return
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		_ = st.Reset()
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("sync: serving a request panicked", "peer", remote, "panic", r)
			_ = st.Reset()
		}
	}()
	if err := s.answer(st); err != nil {
		s.log.Debug("sync: request not served", "peer", remote, "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

func (s *syncService) answer(st network.Stream) error {
	_ = st.SetReadDeadline(time.Now().Add(syncRequestTimeout))
	kind, from, max, maxBytes, err := readSyncRequest(st)
	if err != nil {
		return err
	}
	_ = st.SetWriteDeadline(time.Now().Add(syncResponseTimeout))
	w := bufio.NewWriterSize(st, 64<<10)
	switch kind {
	case syncKindStatus:
		var b [syncStatusReplyLength]byte
		binary.BigEndian.PutUint64(b[:], s.source.SyncHeight())
		if _, err := w.Write(b[:]); err != nil {
			return err
		}
	case syncKindBlocks:
		blocks, err := s.source.SyncBlocks(from, max, maxBytes)
		if err != nil {
			return err
		}
		budget := maxBytes
		for i := range blocks {
			b := &blocks[i]
			// The source's answer is checked as a client would, so a bug there cannot put a
			// response on the wire that honest clients reject as a lie.
			if i == max || b.Height != from+uint64(i) || len(b.Block) > s.maxBlock ||
				len(b.Certificate) > MaxSyncCertificateBytes || (i > 0 && b.size() > budget) {
				break
			}
			budget -= b.size()
			if err := writeSyncItem(w, b); err != nil {
				return err
			}
		}
	}
	return w.Flush()
}

// readSyncRequest reads and checks one request. max and maxBytes come back clamped to the limits.
func readSyncRequest(r io.Reader) (kind byte, from uint64, max, maxBytes int, err error) {
	var b [syncRequestBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("%w: %w", ErrSyncRequest, err)
	}
	kind, from = b[0], binary.BigEndian.Uint64(b[1:9])
	n, nb := binary.BigEndian.Uint32(b[9:13]), binary.BigEndian.Uint32(b[13:17])
	switch kind {
	case syncKindStatus:
		return kind, 0, 0, 0, nil
	case syncKindBlocks:
		if from == 0 || n == 0 || nb == 0 {
			return 0, 0, 0, 0, fmt.Errorf("%w: from %d, max %d, max bytes %d", ErrSyncRequest, from, n, nb)
		}
		return kind, from, int(min(n, MaxSyncBlocks)), int(min(nb, DefaultSyncResponseBytes)), nil
	}
	return 0, 0, 0, 0, fmt.Errorf("%w: kind %d", ErrSyncRequest, kind)
}

func encodeSyncRequest(kind byte, from uint64, max, maxBytes int) []byte {
	b := make([]byte, syncRequestBytes)
	b[0] = kind
	binary.BigEndian.PutUint64(b[1:9], from)
	binary.BigEndian.PutUint32(b[9:13], uint32(max))
	binary.BigEndian.PutUint32(b[13:17], uint32(maxBytes))
	return b
}

func writeSyncItem(w io.Writer, b *SyncedBlock) error {
	var hdr [syncItemHeader]byte
	binary.BigEndian.PutUint64(hdr[:8], b.Height)
	binary.BigEndian.PutUint32(hdr[8:], uint32(len(b.Block)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.Write(b.Block); err != nil {
		return err
	}
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(b.Certificate)))
	if _, err := w.Write(l[:]); err != nil {
		return err
	}
	_, err := w.Write(b.Certificate)
	return err
}

// readSyncBlocks reads a blocks response to a request for max blocks from `from` within maxBytes
// (the first block may exceed it, up to maxBlock). Lengths are checked before anything is
// allocated, so no answer can make the client allocate past what it asked for.
func readSyncBlocks(r io.Reader, from uint64, max, maxBytes, maxBlock int) ([]SyncedBlock, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []SyncedBlock
	budget := maxBytes
	for {
		var hdr [syncItemHeader]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil // a clean end between items
			}
			return out, cutShort(err, fmt.Sprintf("item %d header", len(out)))
		}
		if len(out) == max {
			return out, fmt.Errorf("%w: more than the %d blocks asked for", ErrSyncResponse, max)
		}
		want := from + uint64(len(out))
		b := SyncedBlock{Height: binary.BigEndian.Uint64(hdr[:8])}
		if b.Height != want {
			return out, fmt.Errorf("%w: item %d is height %d, want %d", ErrSyncResponse, len(out), b.Height, want)
		}
		n := int64(binary.BigEndian.Uint32(hdr[8:]))
		limit := int64(min(budget, maxBlock))
		if len(out) == 0 {
			limit = int64(maxBlock)
		}
		if n == 0 || n > limit {
			return out, fmt.Errorf("%w: block %d of %d bytes, limit %d", ErrSyncResponse, b.Height, n, limit)
		}
		b.Block = make([]byte, n)
		if _, err := io.ReadFull(br, b.Block); err != nil {
			return out, cutShort(err, fmt.Sprintf("block %d", b.Height))
		}
		var l [4]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return out, cutShort(err, fmt.Sprintf("certificate %d length", b.Height))
		}
		c := int64(binary.BigEndian.Uint32(l[:]))
		if c == 0 || c > MaxSyncCertificateBytes || (len(out) > 0 && n+c > int64(budget)) {
			return out, fmt.Errorf("%w: certificate %d of %d bytes over the limits", ErrSyncResponse, b.Height, c)
		}
		b.Certificate = make([]byte, c)
		if _, err := io.ReadFull(br, b.Certificate); err != nil {
			return out, cutShort(err, fmt.Sprintf("certificate %d", b.Height))
		}
		budget -= b.size()
		out = append(out, b)
	}
}

// cutShort wraps a failed read of a response: one that ended cleanly in mid-item is the peer's
// doing (ErrSyncResponse); a reset stream or a closed connection is not (ErrSyncBroken).
func cutShort(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s: %w", ErrSyncResponse, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrSyncBroken, what, err)
}

// open starts a request stream to p with ctx's deadline (or DefaultSyncTimeout), and resets it if
// ctx ends first. done closes it.
func (s *syncService) open(ctx context.Context, p string, req []byte) (network.Stream, func(), error) {
	id, err := peer.Decode(p)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: peer %q: %v", ErrSyncUnavailable, p, err)
	}
	if !s.allowed(id) {
		return nil, nil, fmt.Errorf("%w: %s is not an allowed peer", ErrSyncUnavailable, p)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultSyncTimeout)
	}
	// Only peers already connected: sync never dials on its own (discovery and the gater decide
	// who is connected).
	st, err := s.host.NewStream(network.WithNoDial(ctx, "sync"), id, s.proto)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrSyncUnavailable, p, err)
	}
	_ = st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	done := func() {
		stop()
		_ = st.Close()
	}
	if _, err := st.Write(req); err != nil {
		done()
		return nil, nil, fmt.Errorf("%w: %s: sending request: %w", ErrSyncUnavailable, p, err)
	}
	if err := st.CloseWrite(); err != nil {
		done()
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrSyncUnavailable, p, err)
	}
	return st, done, nil
}

// SyncStatus asks peer p (a peer ID) for the height of the last block it can serve.
func (h *Host) SyncStatus(ctx context.Context, p string) (uint64, error) {
	if h.ctx.Err() != nil {
		return 0, ErrClosed
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	st, done, err := h.sync.open(ctx, p, encodeSyncRequest(syncKindStatus, 0, 0, 0))
	if err != nil {
		return 0, err
	}
	defer done()
	var b [syncStatusReplyLength + 1]byte
	n, err := io.ReadFull(st, b[:])
	if n != syncStatusReplyLength || !errors.Is(err, io.ErrUnexpectedEOF) {
		if ctx.Err() != nil || isTimeout(err) {
			return 0, fmt.Errorf("%w: %s: %w", ErrSyncUnavailable, p, err)
		}
		return 0, fmt.Errorf("%w: status of %d bytes (%v)", ErrSyncResponse, n, err)
	}
	return binary.BigEndian.Uint64(b[:syncStatusReplyLength]), nil
}

// FetchBlocks asks peer p for up to max blocks (at most MaxSyncBlocks) from height from on, with
// their certificates, within DefaultSyncResponseBytes. The answer may hold fewer, down to none; the
// blocks are at consecutive heights from `from`, and are otherwise unverified. On a protocol
// violation the blocks read before it come back with an error wrapping ErrSyncResponse.
func (h *Host) FetchBlocks(ctx context.Context, p string, from uint64, max int) ([]SyncedBlock, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if from == 0 || max <= 0 {
		return nil, fmt.Errorf("%w: from %d, max %d", ErrSyncRequest, from, max)
	}
	max = min(max, MaxSyncBlocks)
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	st, done, err := h.sync.open(ctx, p, encodeSyncRequest(syncKindBlocks, from, max, DefaultSyncResponseBytes))
	if err != nil {
		return nil, err
	}
	defer done()
	blocks, err := readSyncBlocks(st, from, max, DefaultSyncResponseBytes, h.sync.maxBlock)
	if err != nil && (ctx.Err() != nil || isTimeout(err)) {
		// A deadline or cancellation cut the stream: the peer was slow, not malformed, nor its
		// stream broken (%v: not ErrSyncBroken either).
		return blocks, fmt.Errorf("%w: %s: %v", ErrSyncUnavailable, p, err)
	}
	return blocks, err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultSyncTimeout)
}

// ConnectedPeers lists the IDs of the peers connected now.
func (h *Host) ConnectedPeers() []string {
	ids := h.host.Network().Peers()
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}
