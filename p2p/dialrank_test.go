package p2p

import (
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

func TestTCPFirstRanksTCPBeforeQUIC(t *testing.T) {
	quic := ma.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1")
	tcp := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	ws := ma.StringCast("/ip4/127.0.0.1/tcp/4002/ws")
	got := tcpFirst([]ma.Multiaddr{quic, ws, tcp})
	if len(got) != 3 || !got[0].Addr.Equal(tcp) || got[0].Delay != 0 {
		t.Fatalf("ranked %v: want TCP first, at once", got)
	}
	for _, d := range got[1:] {
		if d.Delay != quicFallbackDelay {
			t.Errorf("%s after %v, want %v", d.Addr, d.Delay, quicFallbackDelay)
		}
	}
	if got := tcpFirst([]ma.Multiaddr{quic}); len(got) != 1 || got[0].Delay != 0 {
		t.Errorf("QUIC alone: %v, want it at once", got)
	}
}

// A node listening on TCP and QUIC is reached over TCP, whose connections its kernel closes the
// moment its process dies.
func TestPeersConnectOverTCP(t *testing.T) {
	a := newHost(t, func(c *Config) {
		c.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	})
	b := newHost(t, bootstrapTo(a))
	waitFor(t, "a connection", func() bool { return connected(a, b) })
	deadline := time.Now().Add(2 * quicFallbackDelay)
	for time.Now().Before(deadline) {
		for _, c := range b.host.Network().ConnsToPeer(a.host.ID()) {
			if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_TCP); err != nil {
				t.Fatalf("connected over %s, want TCP", c.RemoteMultiaddr())
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
