package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// A TCP port held by another process: the host refuses to start, naming the address, instead of
// running on QUIC alone.
func TestListenPortInUseFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	taken := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", busy.Addr().(*net.TCPAddr).Port)
	key, _ := newKey(t)
	cfg := testConfig(key)
	cfg.Listen = []string{taken, "/ip4/127.0.0.1/udp/0/quic-v1"}
	h, err := New(context.Background(), cfg)
	if err == nil {
		h.Close()
		t.Fatalf("started with %s taken; listening on %v", taken, h.Addrs())
	}
	if !errors.Is(err, ErrListen) || !strings.Contains(err.Error(), taken) || !strings.Contains(err.Error(), "[p2p] listen") {
		t.Fatalf("error %q: want ErrListen naming %s and what to do", err, taken)
	}
	// A UDP port taken: the host starts on TCP and says so at WARN.
	busyUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()
	takenUDP := fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", busyUDP.LocalAddr().(*net.UDPAddr).Port)
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0", takenUDP}
	h = startHost(t, cfg)
	if len(h.Addrs()) == 0 || !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), takenUDP) {
		t.Errorf("UDP port taken: addrs %v, log:\n%s", h.Addrs(), logs.String())
	}
	// Both transports free: it starts.
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	startHost(t, cfg)
}

func TestSameListenAddr(t *testing.T) {
	for _, tt := range []struct {
		req, got string
		want     bool
	}{
		{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/4001", true},
		{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/4001", true},
		{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/4002", false},
		{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1", false},
		{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/udp/5000/quic-v1", true},
		{"/ip4/0.0.0.0/tcp/0", "/ip4/127.0.0.1/tcp/5000", false},
	} {
		if got := sameListenAddr(ma.StringCast(tt.req), ma.StringCast(tt.got)); got != tt.want {
			t.Errorf("sameListenAddr(%s, %s) = %v", tt.req, tt.got, got)
		}
	}
}
