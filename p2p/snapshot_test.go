package p2p

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
)

// snapshotSource serves a fixed offer, chunks and validator changes.
type snapshotSource struct {
	offer   []byte
	chunks  map[uint64][][]byte
	changes map[uint64][][]byte
}

func (s *snapshotSource) SnapshotValidatorChange(h uint64, i uint32) ([]byte, error) {
	if int(i) < len(s.changes[h]) {
		return s.changes[h][i], nil
	}
	return nil, nil
}

func (s *snapshotSource) SnapshotOffer() ([]byte, error) { return s.offer, nil }

func (s *snapshotSource) SnapshotChunk(h uint64, i uint32) ([]byte, error) {
	if int(i) < len(s.chunks[h]) {
		return s.chunks[h][i], nil
	}
	return nil, nil
}

// Offers and chunks come back as served; a missing one is ErrNoSnapshot; a peer that is not
// connected or not allowed is ErrSyncUnavailable; more requests than the per-peer rate are reset.
func TestSnapshotOfferAndChunks(t *testing.T) {
	src := &snapshotSource{offer: []byte("offer"), chunks: map[uint64][][]byte{10: {[]byte("c0"), bytes.Repeat([]byte{7}, 1<<20)}},
		changes: map[uint64][][]byte{10: {[]byte("v0")}}}
	server := newHost(t, func(c *Config) { c.SnapshotSource = src })
	client := newHost(t, bootstrapTo(server))
	waitFor(t, "client to connect", func() bool { return slices.Contains(client.ConnectedPeers(), server.ID()) })
	ctx := context.Background()

	if got, err := client.SnapshotOffer(ctx, server.ID()); err != nil || string(got) != "offer" {
		t.Fatalf("offer: %q, %v", got, err)
	}
	if got, err := client.SnapshotChunk(ctx, server.ID(), 10, 1); err != nil || !bytes.Equal(got, src.chunks[10][1]) {
		t.Fatalf("chunk 1: %d bytes, %v", len(got), err)
	}
	if _, err := client.SnapshotChunk(ctx, server.ID(), 10, 2); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("a chunk the server lacks: %v, want ErrNoSnapshot", err)
	}
	if got, err := client.SnapshotValidatorChange(ctx, server.ID(), 10, 0); err != nil || string(got) != "v0" {
		t.Fatalf("validator change 0: %q, %v", got, err)
	}
	if _, err := client.SnapshotValidatorChange(ctx, server.ID(), 10, 1); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("a validator change the server lacks: %v, want ErrNoSnapshot", err)
	}
	_, otherID := newKey(t)
	gated := newHost(t, func(c *Config) { c.AllowedPeers = []string{otherID} })
	if _, err := gated.SnapshotOffer(ctx, server.ID()); !errors.Is(err, ErrSyncUnavailable) {
		t.Fatalf("offer from a peer not allowed: %v, want ErrSyncUnavailable", err)
	}
	// The per-peer rate: a burst far past it gets some requests refused.
	refused := 0
	for range 4 * snapshotRequestsPerSec {
		if _, err := client.SnapshotChunk(ctx, server.ID(), 10, 0); err != nil {
			refused++
		}
	}
	if refused == 0 {
		t.Fatalf("%d requests at once all served: no rate limit", 4*snapshotRequestsPerSec)
	}
}

// A chunk over the client's limit is refused as the peer's fault, without reading it all.
func TestSnapshotChunkOverLimit(t *testing.T) {
	src := &snapshotSource{chunks: map[uint64][][]byte{1: {bytes.Repeat([]byte{1}, 2048)}}}
	server := newHost(t, func(c *Config) { c.SnapshotSource = src })
	client := newHost(t, bootstrapTo(server))
	waitFor(t, "client to connect", func() bool { return slices.Contains(client.ConnectedPeers(), server.ID()) })
	if _, err := client.askSnapshot(context.Background(), server.ID(), snapshotKindChunk, 1, 0, 1024); !errors.Is(err, ErrSnapshotResponse) {
		t.Fatalf("a 2 KiB chunk with a 1 KiB limit: %v, want ErrSnapshotResponse", err)
	}
}
