package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// State sync: a request/response stream protocol, "/guild/<chain>/snapshot/2", by which a node
// with no state fetches a peer's latest state snapshot (issue 13). Framed as block sync is: one
// request per stream, a fixed-size request, the client closes its side, the server answers and
// closes.
//
//	request  = kind u8 | height u64 | chunk u32
//	kind 1 (offer): answered with the server's latest offer, opaque bytes (the node's encoding
//	                of a manifest and the certified blocks that tie it to the chain), or nothing
//	                when it has none
//	kind 2 (chunk): answered with chunk `chunk` of the snapshot at `height`, or nothing
//	kind 3 (validator change): answered with the proof of validator set change `chunk` (0 the
//	                first after genesis) of those the offer at `height` counts, or nothing
//
// Version 2 added kind 3 and changed the offer (it counts the validator set changes and proves
// the schedule): a node of version 1 and one of version 2 do not speak it to each other.
//
// Answers are bounded (MaxSnapshotOfferBytes, MaxSnapshotChunkBytes) on both sides; each peer may
// ask at most snapshotRequestsPerSec requests a second (in bursts of twice that), and the host
// serves at most maxSnapshotStreams at once: more are reset. p2p checks sizes; the node
// verifies what the bytes mean.

const (
	// MaxSnapshotChunkBytes bounds one chunk on the wire (the node cuts chunks well below it).
	MaxSnapshotChunkBytes = 16 << 20
	// snapshotRequestsPerSec bounds each peer's requests: a joining node fetching 4 MiB chunks
	// from several peers at once needs a few per second from each.
	snapshotRequestsPerSec = 8
	maxSnapshotStreams     = 8
	snapshotRequestBytes   = 1 + 8 + 4
	// DefaultSnapshotTimeout bounds one request when the caller's context has none.
	DefaultSnapshotTimeout = 60 * time.Second

	snapshotKindOffer      byte = 1
	snapshotKindChunk      byte = 2
	snapshotKindValidators byte = 3
)

var (
	// ErrSnapshotResponse is an answer over the limits: the peer is at fault.
	ErrSnapshotResponse = errors.New("p2p: invalid snapshot response")
	// ErrNoSnapshot is an empty answer: the peer has no offer, or not that chunk.
	ErrNoSnapshot = errors.New("p2p: peer has no such snapshot")
)

// SnapshotSource is what a host serves state sync from. Called concurrently from libp2p's stream
// goroutines.
type SnapshotSource interface {
	// SnapshotOffer is the latest snapshot the source can offer, encoded; nil when none.
	SnapshotOffer() ([]byte, error)
	// SnapshotChunk is chunk i of the snapshot at height; nil when the source lacks it.
	SnapshotChunk(height uint64, i uint32) ([]byte, error)
	// SnapshotValidatorChange is the proof of validator set change i of those the offer at
	// height counts, encoded; nil when the source lacks it.
	SnapshotValidatorChange(height uint64, i uint32) ([]byte, error)
}

func snapshotProtocol(chainID string) protocol.ID {
	return protocol.ID("/guild/" + chainID + "/snapshot/2")
}

// MaxSnapshotOfferBytes bounds an offer: a manifest (33 bytes a chunk) and two blocks with their
// certificates.
func (h *Host) MaxSnapshotOfferBytes() int {
	return 2*(h.maxBytes+MaxSyncCertificateBytes) + 33*(1<<16) + 4096
}

type snapshotService struct {
	source SnapshotSource
	proto  protocol.ID
	limit  *rateLimiter[peer.ID]
	slots  chan struct{}
}

// startSnapshots registers the state sync handler when cfg has a snapshot source.
func (h *Host) startSnapshots(cfg Config, gater *allowlistGater) {
	h.snapshots = &snapshotService{
		source: cfg.SnapshotSource,
		proto:  snapshotProtocol(cfg.ChainID),
		limit:  newRateLimiter[peer.ID](RateLimit{MsgsPerSec: snapshotRequestsPerSec, BytesPerSec: 1 << 40}, RateLimit{}),
		slots:  make(chan struct{}, maxSnapshotStreams),
	}
	if cfg.SnapshotSource == nil {
		return
	}
	h.host.SetStreamHandler(h.snapshots.proto, func(st network.Stream) {
		remote := st.Conn().RemotePeer()
		if !gater.allowed(remote) || !h.snapshots.limit.allow(remote, 0, time.Now(), false) {
			_ = st.Reset()
			return
		}
		select {
		case h.snapshots.slots <- struct{}{}:
			defer func() { <-h.snapshots.slots }()
		default:
			_ = st.Reset()
			return
		}
		defer func() {
			if r := recover(); r != nil {
				h.log.Error("snapshot: serving a request panicked", "peer", remote, "panic", r)
				_ = st.Reset()
			}
		}()
		if err := h.answerSnapshot(st); err != nil {
			h.log.Debug("snapshot: request not served", "peer", remote, "err", err)
			_ = st.Reset()
			return
		}
		_ = st.Close()
	})
}

func (h *Host) answerSnapshot(st network.Stream) error {
	_ = st.SetReadDeadline(time.Now().Add(syncRequestTimeout))
	var req [snapshotRequestBytes]byte
	if _, err := io.ReadFull(st, req[:]); err != nil {
		return fmt.Errorf("%w: %w", ErrSyncRequest, err)
	}
	var (
		out []byte
		err error
	)
	switch req[0] {
	case snapshotKindOffer:
		out, err = h.snapshots.source.SnapshotOffer()
		if len(out) > h.MaxSnapshotOfferBytes() {
			return fmt.Errorf("snapshot: own offer of %d bytes is over the limit", len(out))
		}
	case snapshotKindChunk:
		out, err = h.snapshots.source.SnapshotChunk(binary.BigEndian.Uint64(req[1:9]), binary.BigEndian.Uint32(req[9:13]))
		if len(out) > MaxSnapshotChunkBytes {
			return fmt.Errorf("snapshot: own chunk of %d bytes is over the limit", len(out))
		}
	case snapshotKindValidators:
		out, err = h.snapshots.source.SnapshotValidatorChange(binary.BigEndian.Uint64(req[1:9]), binary.BigEndian.Uint32(req[9:13]))
		if len(out) > h.MaxSnapshotOfferBytes() {
			return fmt.Errorf("snapshot: own validator change of %d bytes is over the limit", len(out))
		}
	default:
		return fmt.Errorf("%w: snapshot request kind %d", ErrSyncRequest, req[0])
	}
	if err != nil {
		return err
	}
	_ = st.SetWriteDeadline(time.Now().Add(DefaultSnapshotTimeout))
	_, err = st.Write(out)
	return err
}

// SnapshotOffer asks peer p for its latest snapshot offer (ErrNoSnapshot: it has none).
func (h *Host) SnapshotOffer(ctx context.Context, p string) ([]byte, error) {
	return h.askSnapshot(ctx, p, snapshotKindOffer, 0, 0, h.MaxSnapshotOfferBytes())
}

// SnapshotChunk asks peer p for chunk i of its snapshot at height (ErrNoSnapshot: it lacks it).
// The bytes are unverified.
func (h *Host) SnapshotChunk(ctx context.Context, p string, height uint64, i uint32) ([]byte, error) {
	return h.askSnapshot(ctx, p, snapshotKindChunk, height, i, MaxSnapshotChunkBytes)
}

// SnapshotValidatorChange asks peer p for the proof of validator set change i of those its
// offer at height counts (ErrNoSnapshot: it lacks it). The bytes are unverified; a proof holds
// a block and its certificate, bounded as an offer is.
func (h *Host) SnapshotValidatorChange(ctx context.Context, p string, height uint64, i uint32) ([]byte, error) {
	return h.askSnapshot(ctx, p, snapshotKindValidators, height, i, h.MaxSnapshotOfferBytes())
}

func (h *Host) askSnapshot(ctx context.Context, p string, kind byte, height uint64, i uint32, limit int) ([]byte, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	id, err := peer.Decode(p)
	if err != nil {
		return nil, fmt.Errorf("%w: peer %q: %v", ErrSyncUnavailable, p, err)
	}
	if !h.sync.allowed(id) {
		return nil, fmt.Errorf("%w: %s is not an allowed peer", ErrSyncUnavailable, p)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultSnapshotTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	st, err := h.host.NewStream(network.WithNoDial(ctx, "snapshot"), id, h.snapshots.proto)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSyncUnavailable, p, err)
	}
	_ = st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer func() {
		stop()
		_ = st.Close()
	}()
	req := make([]byte, snapshotRequestBytes)
	req[0] = kind
	binary.BigEndian.PutUint64(req[1:9], height)
	binary.BigEndian.PutUint32(req[9:13], i)
	if _, err := st.Write(req); err != nil {
		return nil, fmt.Errorf("%w: %s: sending request: %w", ErrSyncUnavailable, p, err)
	}
	if err := st.CloseWrite(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSyncUnavailable, p, err)
	}
	// Read one byte past the limit to tell an answer at the limit from one over it, without
	// allocating more than the limit.
	out, err := io.ReadAll(io.LimitReader(st, int64(limit)+1))
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return nil, fmt.Errorf("%w: %s: %v", ErrSyncUnavailable, p, err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrSyncBroken, p, err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrSnapshotResponse, limit)
	}
	if len(out) == 0 {
		return nil, ErrNoSnapshot
	}
	return out, nil
}
