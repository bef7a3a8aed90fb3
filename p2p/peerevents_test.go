package p2p

import (
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// A peer that connects and then goes away (its host closed, as a killed process's connections
// close) shows up on PeerEvents as connected, then not connected: what consensus uses to give a
// disconnected leader up early.
func TestPeerEventsReportConnectAndLoss(t *testing.T) {
	a := newHost(t, nil)
	b := newHost(t, bootstrapTo(a))
	want := func(connected bool) {
		t.Helper()
		deadline := time.After(waitLimit)
		for {
			select {
			case ev := <-a.PeerEvents():
				if ev.Peer == b.ID() && ev.Connected == connected {
					return
				}
			case <-deadline:
				t.Fatalf("no event: %s connected=%v", b.ID(), connected)
			}
		}
	}
	want(true)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	want(false)
	if a.PeerEventsDropped() != 0 {
		t.Errorf("%d events dropped with nobody behind", a.PeerEventsDropped())
	}
}

// fakeConn is a connection known by its remote address and whether it is closed.
type fakeConn struct {
	network.Conn
	addr   ma.Multiaddr
	closed bool
}

func (c *fakeConn) RemoteMultiaddr() ma.Multiaddr { return c.addr }
func (c *fakeConn) IsClosed() bool                { return c.closed }

// When a peer's last TCP connection closes, its QUIC connections are what is left of a killed
// process (they outlive it until their idle timeout) and are closed; while another TCP connection
// is open, or when the closed one was not TCP, nothing is.
func TestConnsLeftWithoutTCP(t *testing.T) {
	tcp := func() *fakeConn { return &fakeConn{addr: ma.StringCast("/ip4/127.0.0.1/tcp/4001")} }
	quic := func() *fakeConn { return &fakeConn{addr: ma.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1")} }
	closedTCP, q1, q2, otherTCP, deadTCP := tcp(), quic(), quic(), tcp(), tcp()
	deadTCP.closed = true
	conns := func(cs ...*fakeConn) []network.Conn {
		out := make([]network.Conn, len(cs))
		for i, c := range cs {
			out[i] = c
		}
		return out
	}
	if got := connsLeftWithoutTCP(closedTCP, conns(closedTCP, q1, deadTCP, q2)); len(got) != 2 || got[0] != q1 || got[1] != q2 {
		t.Errorf("last TCP closed: close %v, want both QUIC connections", got)
	}
	if got := connsLeftWithoutTCP(closedTCP, conns(q1, otherTCP)); got != nil {
		t.Errorf("another TCP connection open: close %v, want none", got)
	}
	if got := connsLeftWithoutTCP(q1, conns(q2, otherTCP)); got != nil {
		t.Errorf("a QUIC connection closed: close %v, want none", got)
	}
	if got := connsLeftWithoutTCP(closedTCP, conns(closedTCP)); got != nil {
		t.Errorf("nothing left: close %v", got)
	}
}

// A link over QUIC alone (no TCP ever) between hosts that listen on both stays up.
func TestQUICOnlyLinkKeptBesideTCPRule(t *testing.T) {
	both := func(c *Config) { c.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"} }
	a := newHost(t, both)
	var quicAddrs []string
	for _, addr := range a.Addrs() {
		if strings.Contains(addr, "/quic-v1/") {
			quicAddrs = append(quicAddrs, addr)
		}
	}
	b := newHost(t, func(c *Config) { both(c); c.Bootstrap = quicAddrs })
	waitFor(t, "a QUIC connection", func() bool { return connected(b, a) })
	time.Sleep(300 * time.Millisecond)
	if !connected(b, a) {
		t.Fatal("the QUIC link was closed")
	}
	for _, c := range b.host.Network().ConnsToPeer(a.host.ID()) {
		if overTCP(c) {
			t.Fatalf("connected over %s, want QUIC alone", c.RemoteMultiaddr())
		}
	}
}
