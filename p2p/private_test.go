package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"slices"
	"sync"
	"testing"
)

// memPrivate accepts payloads that hash to their commitment from the peers in allow, and serves
// them to the same peers.
type memPrivate struct {
	mu    sync.Mutex
	allow map[string]bool
	held  map[[32]byte][]byte
}

func (m *memPrivate) AcceptPrivate(p string, c [32]byte, payload []byte) PrivateStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case !m.allow[p]:
		return PrivateRefused
	case sha256.Sum256(payload) != c:
		return PrivateInvalid
	}
	m.held[c] = payload
	return PrivateOK
}

func (m *memPrivate) ServePrivate(p string, c [32]byte) ([]byte, PrivateStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.allow[p] {
		return nil, PrivateRefused
	}
	b, ok := m.held[c]
	if !ok {
		return nil, PrivateUnknown
	}
	return b, PrivateOK
}

func TestPrivatePushAndFetch(t *testing.T) {
	src := &memPrivate{allow: map[string]bool{}, held: map[[32]byte][]byte{}}
	server := newHost(t, func(c *Config) { c.PrivateSource = src; c.PrivateMaxBytes = 1000 })
	member := newHost(t, bootstrapTo(server))
	stranger := newHost(t, bootstrapTo(server))
	src.allow[member.ID()] = true
	for _, h := range []*Host{member, stranger} {
		waitFor(t, "connection", func() bool { return slices.Contains(h.ConnectedPeers(), server.ID()) })
	}
	ctx := context.Background()
	payload := []byte("ciphertext")
	c := sha256.Sum256(payload)

	if s, err := stranger.PushPrivate(ctx, server.ID(), c, payload); err != nil || s != PrivateRefused {
		t.Fatalf("stranger's push: %v, %v", s, err)
	}
	tampered := append(bytes.Clone(payload), '!')
	if s, err := member.PushPrivate(ctx, server.ID(), c, tampered); err != nil || s != PrivateInvalid {
		t.Fatalf("tampered push: %v, %v", s, err)
	}
	if _, s, err := member.FetchPrivate(ctx, server.ID(), c); err != nil || s != PrivateUnknown {
		t.Fatalf("fetch before push: %v, %v", s, err)
	}
	if s, err := member.PushPrivate(ctx, server.ID(), c, payload); err != nil || s != PrivateOK {
		t.Fatalf("push: %v, %v", s, err)
	}
	got, s, err := member.FetchPrivate(ctx, server.ID(), c)
	if err != nil || s != PrivateOK || !bytes.Equal(got, payload) {
		t.Fatalf("fetch: %q, %v, %v", got, s, err)
	}
	if _, s, err := stranger.FetchPrivate(ctx, server.ID(), c); err != nil || s != PrivateRefused {
		t.Fatalf("stranger's fetch: %v, %v", s, err)
	}
	// Over the server's limit: refused before the payload is read (the client's own limit is
	// the default, larger).
	big := make([]byte, 1001)
	if s, err := member.PushPrivate(ctx, server.ID(), sha256.Sum256(big), big); err != nil || s != PrivateInvalid {
		t.Fatalf("oversize push: %v, %v", s, err)
	}
	counts := server.PrivateCounts()
	if counts.Pushes[PrivateOK] != 1 || counts.Pushes[PrivateRefused] != 1 || counts.Pushes[PrivateInvalid] != 2 ||
		counts.Fetches[PrivateOK] != 1 || counts.Fetches[PrivateRefused] != 1 || counts.Fetches[PrivateUnknown] != 1 {
		t.Fatalf("counts %+v", counts)
	}
}

func TestPrivateRateLimit(t *testing.T) {
	src := &memPrivate{allow: map[string]bool{}, held: map[[32]byte][]byte{}}
	server := newHost(t, func(c *Config) {
		c.PrivateSource = src
		c.PrivateRate = RateLimit{MsgsPerSec: 1, BytesPerSec: 1 << 20}
	})
	client := newHost(t, bootstrapTo(server))
	src.allow[client.ID()] = true
	waitFor(t, "connection", func() bool { return slices.Contains(client.ConnectedPeers(), server.ID()) })
	busy := 0
	for range 10 { // the bucket holds two seconds' worth: 2 requests
		_, s, err := client.FetchPrivate(context.Background(), server.ID(), [32]byte{1})
		if err != nil {
			t.Fatal(err)
		}
		if s == PrivateBusy {
			busy++
		}
	}
	if busy < 5 {
		t.Fatalf("%d of 10 requests refused as busy at 1/s", busy)
	}
}
