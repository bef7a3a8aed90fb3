package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// chainSource serves n made-up blocks; block h is "block-h" padded to pad bytes.
type chainSource struct {
	n     uint64
	pad   int
	calls atomic.Int32
}

func (c *chainSource) SyncHeight() uint64 { return c.n }

func (c *chainSource) SyncBlocks(from uint64, max, maxBytes int) ([]SyncedBlock, error) {
	c.calls.Add(1)
	var out []SyncedBlock
	size := 0
	for h := from; h <= c.n && len(out) < max; h++ {
		b := SyncedBlock{Height: h, Block: c.block(h), Certificate: []byte(fmt.Sprintf("cert-%d", h))}
		if len(out) > 0 && size+b.size() > maxBytes {
			break
		}
		size += b.size()
		out = append(out, b)
	}
	return out, nil
}

func (c *chainSource) block(h uint64) []byte {
	b := []byte(fmt.Sprintf("block-%d", h))
	if len(b) < c.pad {
		b = append(b, make([]byte, c.pad-len(b))...)
	}
	return b
}

// syncPair starts a server with src and a client connected to it.
func syncPair(t *testing.T, src SyncSource) (server, client *Host) {
	t.Helper()
	server = newHost(t, func(c *Config) { c.SyncSource = src })
	client = newHost(t, bootstrapTo(server))
	waitFor(t, "client to connect", func() bool { return slices.Contains(client.ConnectedPeers(), server.ID()) })
	return server, client
}

func TestFetchBlocksAndStatus(t *testing.T) {
	src := &chainSource{n: 300}
	server, client := syncPair(t, src)
	ctx := context.Background()

	h, err := client.SyncStatus(ctx, server.ID())
	if err != nil || h != 300 {
		t.Fatalf("SyncStatus = %d, %v; want 300", h, err)
	}
	got, err := client.FetchBlocks(ctx, server.ID(), 10, 5)
	if err != nil || len(got) != 5 {
		t.Fatalf("FetchBlocks(10, 5) = %d blocks, %v", len(got), err)
	}
	for i, b := range got {
		if b.Height != 10+uint64(i) || !bytes.Equal(b.Block, src.block(b.Height)) || string(b.Certificate) != fmt.Sprintf("cert-%d", b.Height) {
			t.Fatalf("item %d: %+v", i, b)
		}
	}
	// Asking for more than MaxSyncBlocks gets MaxSyncBlocks; past the tip, what there is.
	if got, err = client.FetchBlocks(ctx, server.ID(), 1, 1000); err != nil || len(got) != MaxSyncBlocks {
		t.Fatalf("FetchBlocks(1, 1000) = %d blocks, %v; want %d", len(got), err, MaxSyncBlocks)
	}
	if got, err = client.FetchBlocks(ctx, server.ID(), 299, 10); err != nil || len(got) != 2 {
		t.Fatalf("FetchBlocks(299, 10) = %d blocks, %v; want 2", len(got), err)
	}
	if got, err = client.FetchBlocks(ctx, server.ID(), 301, 10); err != nil || len(got) != 0 {
		t.Fatalf("FetchBlocks past the tip = %d blocks, %v; want none", len(got), err)
	}
	// The response byte budget holds: 1 MiB blocks, 16 MiB budget.
	src.pad = 1 << 20
	if got, err = client.FetchBlocks(ctx, server.ID(), 1, 100); err != nil || len(got) == 0 || len(got) >= 16 {
		t.Fatalf("FetchBlocks of 1 MiB blocks = %d blocks, %v; want 1..15", len(got), err)
	}
	if _, err := client.FetchBlocks(ctx, server.ID(), 0, 10); !errors.Is(err, ErrSyncRequest) {
		t.Fatalf("FetchBlocks from 0: %v, want ErrSyncRequest", err)
	}
}

func TestSyncNeedsAConnectedAllowedPeer(t *testing.T) {
	src := &chainSource{n: 3}
	server := newHost(t, func(c *Config) { c.SyncSource = src })
	loner := newHost(t, nil) // never connected: sync does not dial
	ctx := context.Background()
	if _, err := loner.SyncStatus(ctx, server.ID()); !errors.Is(err, ErrSyncUnavailable) {
		t.Fatalf("status from an unconnected peer: %v, want ErrSyncUnavailable", err)
	}
	_, otherID := newKey(t)
	gated := newHost(t, func(c *Config) { c.AllowedPeers = []string{otherID} })
	if _, err := gated.FetchBlocks(ctx, server.ID(), 1, 1); !errors.Is(err, ErrSyncUnavailable) {
		t.Fatalf("fetch from a peer not allowed: %v, want ErrSyncUnavailable", err)
	}
	if _, err := loner.SyncStatus(ctx, "not-a-peer-id"); !errors.Is(err, ErrSyncUnavailable) {
		t.Fatalf("status of a bad peer ID: %v", err)
	}
}

// A server that lies about framing, sends too much, or never answers costs the client an error
// within its deadline, never a panic or an allocation beyond what it asked for.
func TestFetchBlocksFromMisbehavingServer(t *testing.T) {
	server, client := syncPair(t, &chainSource{n: 10})
	item := func(h uint64, block, cert []byte) []byte {
		var b bytes.Buffer
		if err := writeSyncItem(&b, &SyncedBlock{Height: h, Block: block, Certificate: cert}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	hugeLen := make([]byte, 12)
	binary.BigEndian.PutUint64(hugeLen, 1)
	binary.BigEndian.PutUint32(hugeLen[8:], 1<<31)
	// cut: how the server ends its answer instead of closing the stream cleanly.
	const (
		closeStream = iota
		resetStream
		closeConn
	)
	cases := []struct {
		name  string
		reply []byte
		hang  bool
		want  error
		cut   int
	}{
		{"wrong height", item(2, []byte("b"), []byte("c")), false, ErrSyncResponse, closeStream},
		{"huge block length", hugeLen, false, ErrSyncResponse, closeStream},
		{"truncated", item(1, []byte("block"), []byte("cert"))[:15], false, ErrSyncResponse, closeStream},
		{"empty certificate", item(1, []byte("b"), nil), false, ErrSyncResponse, closeStream},
		{"too many", slices.Concat(item(1, []byte("b"), []byte("c")), item(2, []byte("b"), []byte("c")),
			item(3, []byte("b"), []byte("c"))), false, ErrSyncResponse, closeStream},
		{"silent", nil, true, ErrSyncUnavailable, closeStream},
		// Neither a reset nor a connection closed in mid-answer is a lie (a busy server resets,
		// a link reset closes the connection): ErrSyncBroken, never ErrSyncResponse.
		{"reset in mid-item", item(1, []byte("block"), []byte("cert"))[:15], false, ErrSyncBroken, resetStream},
		{"reset before anything", nil, false, ErrSyncBroken, resetStream},
		{"connection closed in mid-item", item(1, []byte("block"), []byte("cert"))[:15], false, ErrSyncBroken, closeConn},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			waitFor(t, "client to connect", func() bool { return slices.Contains(client.ConnectedPeers(), server.ID()) })
			server.host.SetStreamHandler(server.sync.proto, func(s network.Stream) {
				_, _ = io.ReadAll(io.LimitReader(s, syncRequestBytes))
				if tc.hang {
					<-release
					s.Close()
					return
				}
				_, _ = s.Write(tc.reply)
				switch tc.cut {
				case closeStream:
					s.Close()
				case resetStream:
					s.Reset()
				case closeConn:
					s.Conn().Close()
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := client.FetchBlocks(ctx, server.ID(), 1, 2)
			if tc.cut != closeStream && errors.Is(err, ErrSyncUnavailable) {
				// The reset or the closed connection may reach the client while it still
				// closes its side of the request, before it reads: it cannot tell that from a
				// server that refused the stream (CI saw it for a reset, a loaded race run for
				// a closed connection). Either way it is no lie.
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrSyncResponse, ErrSyncBroken} {
				if other != tc.want && errors.Is(err, other) {
					t.Fatalf("got %v, which is also %v", err, other)
				}
			}
		})
	}
}

// Garbage requests are refused without reaching the source.
func TestSyncServerRefusesBadRequests(t *testing.T) {
	src := &chainSource{n: 10}
	server, client := syncPair(t, src)
	for _, req := range [][]byte{
		nil,
		{9, 9, 9},
		encodeSyncRequest(7, 1, 1, 1),
		encodeSyncRequest(syncKindBlocks, 0, 1, 100),
		encodeSyncRequest(syncKindBlocks, 1, 0, 100),
	} {
		s, err := client.host.NewStream(context.Background(), server.host.ID(), server.sync.proto)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.Write(req)
		_ = s.CloseWrite()
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		reply, _ := io.ReadAll(s)
		_ = s.Close()
		if len(reply) != 0 {
			t.Fatalf("request %x answered with %d bytes", req, len(reply))
		}
	}
	if n := src.calls.Load(); n != 0 {
		t.Fatalf("the source was asked %d times for bad requests", n)
	}
}

func FuzzReadSyncBlocks(f *testing.F) {
	var good bytes.Buffer
	_ = writeSyncItem(&good, &SyncedBlock{Height: 5, Block: []byte("block"), Certificate: []byte("cert")})
	_ = writeSyncItem(&good, &SyncedBlock{Height: 6, Block: []byte("b2"), Certificate: []byte("c2")})
	f.Add(good.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		blocks, err := readSyncBlocks(bytes.NewReader(data), 5, 4, 1024, 512)
		if len(blocks) > 4 {
			t.Fatalf("%d blocks for max 4", len(blocks))
		}
		size := 0
		for i, b := range blocks {
			if b.Height != 5+uint64(i) || len(b.Block) == 0 || len(b.Block) > 512 {
				t.Fatalf("item %d: height %d, %d bytes", i, b.Height, len(b.Block))
			}
			if i > 0 {
				size += b.size()
			}
		}
		if size > 1024 {
			t.Fatalf("%d bytes after the first block, budget 1024", size)
		}
		if err == nil && len(blocks) == 0 && len(data) != 0 {
			t.Fatal("nonempty garbage read as an empty answer")
		}
	})
}

func FuzzReadSyncRequest(f *testing.F) {
	f.Add(encodeSyncRequest(syncKindBlocks, 1, 10, 1000))
	f.Add(encodeSyncRequest(syncKindStatus, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, from, max, maxBytes, err := readSyncRequest(bytes.NewReader(data))
		if err != nil {
			return
		}
		if kind == syncKindBlocks && (from == 0 || max < 1 || max > MaxSyncBlocks || maxBytes < 1 || maxBytes > DefaultSyncResponseBytes) {
			t.Fatalf("accepted from %d max %d maxBytes %d", from, max, maxBytes)
		}
	})
}
