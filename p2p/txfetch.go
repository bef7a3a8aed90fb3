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

// Transactions by hash: a request/response stream protocol, "/guild/<chain>/txs-by-hash/1", by
// which a validator that received a proposal by reference (issue #10) fetches the transactions
// it lacks from the proposer or any other allowed peer.
//
// One request per stream. The client writes
//
//	count u32 | count × 32-byte hash
//
// with 1 ≤ count ≤ MaxFetchTxs, and closes its side. The server answers, in request order, one
// item per hash it serves, until it has no more or its response budget is spent:
//
//	len u32 | transaction bytes        (len 0: the server does not hold it)
//
// and closes. Items it left out count as not held. p2p checks framing and limits only; the node
// checks that each transaction hashes to what it asked for and verifies its signatures.

const (
	// MaxFetchTxs is the most hashes one request may carry (128 KiB of hashes); a client asks
	// for more in several requests.
	MaxFetchTxs = 4096
	// MaxFetchResponseBytes bounds the transaction bytes of one response.
	MaxFetchResponseBytes = 4 << 20
	// DefaultFetchTxBytes is the largest transaction served or accepted when Config does not say.
	DefaultFetchTxBytes = 64 << 10
	// maxFetchStreams bounds the fetch requests a host serves at once; more are reset.
	maxFetchStreams = 16
	// fetchRequestTimeout bounds the wait for a request once a stream is open, and
	// fetchResponseTimeout writing the response.
	fetchRequestTimeout  = 2 * time.Second
	fetchResponseTimeout = 5 * time.Second
	// DefaultFetchTimeout is a client request's deadline when its context has none.
	DefaultFetchTimeout = 2 * time.Second
	hashBytes           = 32
)

// DefaultFetchRateLimit bounds the requests one peer may make of this host: an honest validator
// asks once per proposal it cannot rebuild (a few per second) for what tx gossip did not bring
// it; at 15,000 tx/s a peer missing every transaction asks for 15,000 hashes (480 KB) a second.
// BytesPerSec counts request bytes (32 per hash).
var DefaultFetchRateLimit = RateLimit{MsgsPerSec: 100, BytesPerSec: 4 << 20}

var (
	// ErrFetchRequest is a fetch request that breaks the protocol: no hashes, too many.
	ErrFetchRequest = errors.New("p2p: invalid tx fetch request")
	// ErrFetchResponse is a fetch response that breaks the protocol (more items than asked
	// for, an item over the limits, an item cut off): the peer that sent it is at fault.
	ErrFetchResponse = errors.New("p2p: invalid tx fetch response")
	// ErrFetchUnavailable: the peer cannot be asked (not connected, not allowed, does not speak
	// the protocol, refused or reset the stream, timed out). It says nothing of its honesty.
	ErrFetchUnavailable = errors.New("p2p: peer unavailable for tx fetch")
)

// TxSource is what a host serves transactions by hash from. TxsByHash returns one entry per hash,
// nil for a transaction it does not hold. It is called concurrently, from libp2p's stream
// goroutines.
type TxSource interface {
	TxsByHash(hashes [][32]byte) [][]byte
}

func fetchProtocol(chainID string) protocol.ID {
	return protocol.ID("/guild/" + chainID + "/txs-by-hash/1")
}

// fetchService serves and asks for transactions by hash on one host.
type fetchService struct {
	host    host.Host
	proto   protocol.ID
	source  TxSource // nil: this host asks but does not serve
	allowed func(peer.ID) bool
	maxTx   int
	slots   chan struct{}
	rate    *rateLimiter[peer.ID]
	log     *slog.Logger
	// refused counts requests not served: from a peer not allowed, over the rate limit, with no
	// free slot, or malformed.
	refused atomic.Uint64
}

func (h *Host) startFetch(cfg Config, gater *allowlistGater) {
	maxTx := cfg.FetchTxMaxBytes
	if maxTx <= 0 {
		maxTx = DefaultFetchTxBytes
	}
	h.fetch = &fetchService{
		host:    h.host,
		proto:   fetchProtocol(cfg.ChainID),
		source:  cfg.TxSource,
		allowed: gater.allowed,
		maxTx:   maxTx,
		slots:   make(chan struct{}, maxFetchStreams),
		rate:    newRateLimiter[peer.ID](cfg.FetchRate, DefaultFetchRateLimit),
		log:     h.log,
	}
	if cfg.TxSource != nil {
		h.host.SetStreamHandler(h.fetch.proto, h.fetch.serve)
	}
}

// FetchRefused counts the fetch requests this host refused to serve (see fetchService.refused).
func (h *Host) FetchRefused() uint64 { return h.fetch.refused.Load() }

// serve answers one request. Whatever the peer sends, the stream ends and nothing panics.
func (s *fetchService) serve(st network.Stream) {
	remote := st.Conn().RemotePeer()
	if !s.allowed(remote) {
		s.refused.Add(1)
		_ = st.Reset() // the gater refuses strangers already; this guards a gater change
		return
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		s.refused.Add(1)
		_ = st.Reset()
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("tx fetch: serving a request panicked", "peer", remote, "panic", r)
			_ = st.Reset()
		}
	}()
	if err := s.answer(st, remote); err != nil {
		s.refused.Add(1)
		s.log.Debug("tx fetch: request not served", "peer", remote, "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

func (s *fetchService) answer(st network.Stream, remote peer.ID) error {
	_ = st.SetReadDeadline(time.Now().Add(fetchRequestTimeout))
	hashes, err := readFetchRequest(st)
	if err != nil {
		return err
	}
	if !s.rate.allow(remote, len(hashes)*hashBytes, time.Now(), false) {
		return fmt.Errorf("%w: %s is over the rate limit", ErrFetchRequest, remote)
	}
	txs := s.source.TxsByHash(hashes)
	_ = st.SetWriteDeadline(time.Now().Add(fetchResponseTimeout))
	w := bufio.NewWriterSize(st, 64<<10)
	budget := MaxFetchResponseBytes
	for i := range hashes {
		var tx []byte
		if i < len(txs) {
			tx = txs[i]
		}
		if len(tx) > s.maxTx {
			tx = nil // checked as a client would: never send what honest clients call a lie
		}
		if len(tx) > budget {
			break // the client takes the rest as not held, and asks someone else
		}
		budget -= len(tx)
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(tx)))
		if _, err := w.Write(l[:]); err != nil {
			return err
		}
		if _, err := w.Write(tx); err != nil {
			return err
		}
	}
	return w.Flush()
}

// readFetchRequest reads and checks one request; the count is checked before the hashes are
// read, so no request makes the server allocate more than MaxFetchTxs hashes.
func readFetchRequest(r io.Reader) ([][32]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetchRequest, err)
	}
	n := binary.BigEndian.Uint32(l[:])
	if n == 0 || n > MaxFetchTxs {
		return nil, fmt.Errorf("%w: %d hashes, limit %d", ErrFetchRequest, n, MaxFetchTxs)
	}
	buf := make([]byte, int(n)*hashBytes)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetchRequest, err)
	}
	out := make([][32]byte, n)
	for i := range out {
		copy(out[i][:], buf[i*hashBytes:])
	}
	return out, nil
}

func encodeFetchRequest(hashes [][32]byte) []byte {
	b := make([]byte, 4, 4+len(hashes)*hashBytes)
	binary.BigEndian.PutUint32(b, uint32(len(hashes)))
	for i := range hashes {
		b = append(b, hashes[i][:]...)
	}
	return b
}

// readFetchResponse reads the answer to a request for want hashes. Lengths are checked before
// anything is allocated.
func readFetchResponse(r io.Reader, want, maxTx int) ([][]byte, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	out := make([][]byte, want)
	budget := MaxFetchResponseBytes
	for i := 0; ; i++ {
		var l [4]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil // a clean end between items: the rest are not held
			}
			return out, fetchCutShort(err, i)
		}
		if i == want {
			return out, fmt.Errorf("%w: more than the %d items asked for", ErrFetchResponse, want)
		}
		n := int(binary.BigEndian.Uint32(l[:]))
		if n > maxTx || n > budget {
			return out, fmt.Errorf("%w: item %d of %d bytes over the limits", ErrFetchResponse, i, n)
		}
		if n == 0 {
			continue
		}
		tx := make([]byte, n)
		if _, err := io.ReadFull(br, tx); err != nil {
			return out, fetchCutShort(err, i)
		}
		budget -= n
		out[i] = tx
	}
}

// fetchCutShort wraps a failed read: a response that ended cleanly in mid-item is the peer's
// doing; a reset or closed connection is not.
func fetchCutShort(err error, item int) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: item %d cut off: %w", ErrFetchResponse, item, err)
	}
	return fmt.Errorf("%w: item %d: %w", ErrFetchUnavailable, item, err)
}

// FetchTxs asks peer p (a peer ID) for the transactions with the given hashes (at most
// MaxFetchTxs). The answer holds one entry per hash, nil for each the peer did not send. The
// bytes are otherwise unchecked: the caller must check that each hashes to what it asked for.
// An error wrapping ErrFetchResponse blames the peer; one wrapping ErrFetchUnavailable does not.
func (h *Host) FetchTxs(ctx context.Context, p string, hashes [][32]byte) ([][]byte, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if len(hashes) == 0 || len(hashes) > MaxFetchTxs {
		return nil, fmt.Errorf("%w: %d hashes, limit %d", ErrFetchRequest, len(hashes), MaxFetchTxs)
	}
	s := h.fetch
	id, err := peer.Decode(p)
	if err != nil {
		return nil, fmt.Errorf("%w: peer %q: %v", ErrFetchUnavailable, p, err)
	}
	if !s.allowed(id) {
		return nil, fmt.Errorf("%w: %s is not an allowed peer", ErrFetchUnavailable, p)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultFetchTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	// Connected peers only, as block sync: fetching never dials on its own.
	st, err := s.host.NewStream(network.WithNoDial(ctx, "tx fetch"), id, s.proto)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFetchUnavailable, p, err)
	}
	_ = st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer func() {
		stop()
		_ = st.Close()
	}()
	if _, err := st.Write(encodeFetchRequest(hashes)); err != nil {
		return nil, fmt.Errorf("%w: %s: sending request: %w", ErrFetchUnavailable, p, err)
	}
	if err := st.CloseWrite(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFetchUnavailable, p, err)
	}
	txs, err := readFetchResponse(st, len(hashes), s.maxTx)
	if err != nil && (ctx.Err() != nil || isTimeout(err)) {
		return txs, fmt.Errorf("%w: %s: %v", ErrFetchUnavailable, p, err)
	}
	return txs, err
}
