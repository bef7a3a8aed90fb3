package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// mapSource serves the transactions it holds, by hash.
type mapSource struct {
	txs   map[[32]byte][]byte
	calls atomic.Int32
}

func (m *mapSource) TxsByHash(hashes [][32]byte) [][]byte {
	m.calls.Add(1)
	out := make([][]byte, len(hashes))
	for i, h := range hashes {
		out[i] = m.txs[h]
	}
	return out
}

func fetchPair(t *testing.T, src TxSource, mutate func(*Config)) (server, client *Host) {
	t.Helper()
	server = newHost(t, func(c *Config) {
		c.TxSource = src
		if mutate != nil {
			mutate(c)
		}
	})
	client = newHost(t, bootstrapTo(server))
	waitFor(t, "client to connect", func() bool { return slices.Contains(client.ConnectedPeers(), server.ID()) })
	return server, client
}

func TestFetchTxsByHash(t *testing.T) {
	src := &mapSource{txs: map[[32]byte][]byte{{1}: []byte("tx-one"), {3}: []byte("tx-three")}}
	server, client := fetchPair(t, src, nil)
	got, err := client.FetchTxs(context.Background(), server.ID(), [][32]byte{{1}, {2}, {3}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[0]) != "tx-one" || got[1] != nil || string(got[2]) != "tx-three" {
		t.Fatalf("FetchTxs = %q", got)
	}
	// Requests over the limit are refused by the client before they leave...
	if _, err := client.FetchTxs(context.Background(), server.ID(), make([][32]byte, MaxFetchTxs+1)); !errors.Is(err, ErrFetchRequest) {
		t.Fatalf("oversize request: %v, want ErrFetchRequest", err)
	}
	if _, err := client.FetchTxs(context.Background(), server.ID(), nil); !errors.Is(err, ErrFetchRequest) {
		t.Fatalf("empty request: %v, want ErrFetchRequest", err)
	}
}

// Oversize and malformed requests sent raw are refused by the server without reaching the
// source and without an answer.
func TestFetchServerRefusesBadRequests(t *testing.T) {
	src := &mapSource{txs: map[[32]byte][]byte{}}
	server, client := fetchPair(t, src, nil)
	over := make([]byte, 4)
	binary.BigEndian.PutUint32(over, MaxFetchTxs+1)
	over = append(over, make([]byte, 64)...)
	short := encodeFetchRequest([][32]byte{{1}, {2}})[:40]
	for _, req := range [][]byte{nil, {0, 0, 0, 0}, over, short} {
		s, err := client.host.NewStream(context.Background(), server.host.ID(), server.fetch.proto)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.Write(req)
		_ = s.CloseWrite()
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		reply, _ := io.ReadAll(s)
		_ = s.Close()
		if len(reply) != 0 {
			t.Fatalf("request %x answered with %d bytes", req[:min(len(req), 8)], len(reply))
		}
	}
	if n := src.calls.Load(); n != 0 {
		t.Fatalf("the source was asked %d times for bad requests", n)
	}
	if server.FetchRefused() < 4 {
		t.Fatalf("refused counter %d, want at least 4", server.FetchRefused())
	}
}

// A peer over its rate limit is refused; unknown peers are never served.
func TestFetchRateLimitAndUnknownPeers(t *testing.T) {
	src := &mapSource{txs: map[[32]byte][]byte{{1}: []byte("tx")}}
	server, client := fetchPair(t, src, func(c *Config) { c.FetchRate = RateLimit{MsgsPerSec: 1, BytesPerSec: 1 << 20} })
	ctx := context.Background()
	ok, refused := 0, 0
	for i := 0; i < 6; i++ { // the bucket holds 2 s worth: 2 requests
		if _, err := client.FetchTxs(ctx, server.ID(), [][32]byte{{1}}); err == nil {
			ok++
		} else if errors.Is(err, ErrFetchUnavailable) {
			refused++
		} else {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if ok < 1 || refused < 3 {
		t.Fatalf("%d served, %d refused; want the limit to refuse most of 6 quick requests", ok, refused)
	}

	_, otherID := newKey(t)
	gated := newHost(t, func(c *Config) { c.AllowedPeers = []string{otherID} })
	if _, err := gated.FetchTxs(ctx, server.ID(), [][32]byte{{1}}); !errors.Is(err, ErrFetchUnavailable) {
		t.Fatalf("fetch from a peer not allowed: %v, want ErrFetchUnavailable", err)
	}
}

// A server that sends more than asked, an item over the limits, or a cut-off item costs the
// client an ErrFetchResponse, never a panic or an allocation beyond the limits.
func TestFetchTxsFromMisbehavingServer(t *testing.T) {
	server, client := fetchPair(t, &mapSource{}, nil)
	item := func(b []byte) []byte {
		out := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
		return append(out, b...)
	}
	huge := binary.BigEndian.AppendUint32(nil, 1<<31)
	cases := []struct {
		name  string
		reply []byte
	}{
		{"too many", slices.Concat(item([]byte("a")), item([]byte("b")), item([]byte("c")))},
		{"huge item", huge},
		{"over the tx limit", item(make([]byte, DefaultFetchTxBytes+1))},
		{"cut off", item([]byte("abcdef"))[:7]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			server.host.SetStreamHandler(server.fetch.proto, func(s network.Stream) {
				_, _ = io.ReadAll(io.LimitReader(s, 4+2*hashBytes))
				_, _ = s.Write(tc.reply)
				s.Close()
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := client.FetchTxs(ctx, server.ID(), [][32]byte{{1}, {2}}); !errors.Is(err, ErrFetchResponse) {
				t.Fatalf("got %v, want ErrFetchResponse", err)
			}
		})
	}
}

func FuzzReadFetchResponse(f *testing.F) {
	var good bytes.Buffer
	good.Write(binary.BigEndian.AppendUint32(nil, 2))
	good.WriteString("ab")
	good.Write([]byte{0, 0, 0, 0})
	f.Add(good.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		txs, _ := readFetchResponse(bytes.NewReader(data), 3, 16)
		if len(txs) != 3 {
			t.Fatalf("%d entries for 3 hashes", len(txs))
		}
		for _, tx := range txs {
			if len(tx) > 16 {
				t.Fatalf("entry of %d bytes, limit 16", len(tx))
			}
		}
	})
}
