package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// quicFallbackDelay is how long a dial waits on a peer's TCP addresses before it tries the others.
const quicFallbackDelay = time.Second

// tcpFirst ranks a peer's addresses for dialing: TCP at once, QUIC (and anything else) only
// quicFallbackDelay later, should no TCP dial have succeeded by then; libp2p's default does the
// opposite. Why: when a node's process dies, its kernel closes its TCP connections at once, so its
// peers know within milliseconds, and consensus gives a crashed leader up on that
// (consensus.Core.SetPeerDown); a QUIC connection to a dead process stays up until its idle
// timeout, 30 s, and a chaos run's kill-leader faults waited out a whole view timeout whenever
// the links had drifted to QUIC (every redial after a restart preferred it). On loopback TCP also
// moves a large proposal in a few segments where QUIC sends ~1,200-byte datagrams.
func tcpFirst(addrs []ma.Multiaddr) []network.AddrDelay {
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range addrs {
		if isTCP(a) {
			out = append(out, network.AddrDelay{Addr: a})
		}
	}
	var delay time.Duration
	if len(out) > 0 {
		delay = quicFallbackDelay
	}
	for _, a := range addrs {
		if !isTCP(a) {
			out = append(out, network.AddrDelay{Addr: a, Delay: delay})
		}
	}
	return out
}

// isTCP reports whether a is a plain TCP address (not a websocket or other transport over TCP).
func isTCP(a ma.Multiaddr) bool {
	sawTCP := false
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_TCP:
			sawTCP = true
		case ma.P_WS, ma.P_WSS, ma.P_TLS, ma.P_HTTP, ma.P_HTTPS:
			return false
		}
	}
	return sawTCP
}
