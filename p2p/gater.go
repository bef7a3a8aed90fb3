package p2p

import (
	"fmt"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// allowlistGater admits only the configured peers, in both directions. An inbound connection's
// peer is known only once the security handshake has authenticated it, so that is where inbound
// strangers are refused (InterceptSecured); outbound dials to strangers are never started
// (InterceptPeerDial).
type allowlistGater struct {
	allow map[peer.ID]struct{} // nil: anyone
	log   *slog.Logger
}

func newAllowlistGater(ids []string, log *slog.Logger) (*allowlistGater, error) {
	g := &allowlistGater{log: log}
	if len(ids) == 0 {
		return g, nil
	}
	g.allow = make(map[peer.ID]struct{}, len(ids))
	for _, s := range ids {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("%w: allowed peer %q: %v", ErrConfig, s, err)
		}
		g.allow[id] = struct{}{}
	}
	return g, nil
}

func (g *allowlistGater) allowed(p peer.ID) bool {
	if g.allow == nil {
		return true
	}
	_, ok := g.allow[p]
	return ok
}

func (g *allowlistGater) InterceptPeerDial(p peer.ID) bool {
	if !g.allowed(p) {
		g.log.Debug("refused to dial a peer not in AllowedPeers", "peer", p)
		return false
	}
	return true
}

func (g *allowlistGater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

func (g *allowlistGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *allowlistGater) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	if !g.allowed(p) {
		g.log.Debug("refused a connection from a peer not in AllowedPeers", "peer", p,
			"direction", dir, "remote", addrs.RemoteMultiaddr())
		return false
	}
	return true
}

func (g *allowlistGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
