package p2p

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// allowlistGater admits only members (validators and other bound peers, replaceable at run time
// with SetAllowedPeers) and observers (fixed by configuration), in both directions, and refuses
// peers on the blocklist until their cool-off ends. An inbound connection's peer is known only
// once the security handshake has authenticated it, so that is where inbound strangers are
// refused (InterceptSecured); outbound dials to strangers are never started (InterceptPeerDial).
type allowlistGater struct {
	log *slog.Logger
	// open: no allowlist was configured, anyone may connect (blocklist still applies).
	open bool

	mu        sync.RWMutex
	members   map[peer.ID]struct{}
	observers map[peer.ID]struct{}
	blocked   map[peer.ID]time.Time // until when
}

func decodePeerIDs(what string, ids []string) (map[peer.ID]struct{}, error) {
	out := make(map[peer.ID]struct{}, len(ids))
	for _, s := range ids {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q: %v", ErrConfig, what, s, err)
		}
		out[id] = struct{}{}
	}
	return out, nil
}

func newAllowlistGater(members, observers []string, log *slog.Logger) (*allowlistGater, error) {
	g := &allowlistGater{log: log, open: len(members) == 0 && len(observers) == 0, blocked: map[peer.ID]time.Time{}}
	var err error
	if g.members, err = decodePeerIDs("allowed peer", members); err != nil {
		return nil, err
	}
	if g.observers, err = decodePeerIDs("observer", observers); err != nil {
		return nil, err
	}
	return g, nil
}

// setMembers replaces the member part of the allowlist.
func (g *allowlistGater) setMembers(m map[peer.ID]struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members = m
}

// block refuses p until now+d.
func (g *allowlistGater) block(p peer.ID, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked[p] = time.Now().Add(d)
}

// isBlocked reports whether p is cooling off, forgetting expired entries.
func (g *allowlistGater) isBlocked(p peer.ID) bool {
	g.mu.RLock()
	until, ok := g.blocked[p]
	g.mu.RUnlock()
	if !ok {
		return false
	}
	if time.Now().Before(until) {
		return true
	}
	g.mu.Lock()
	if u, ok := g.blocked[p]; ok && !time.Now().Before(u) {
		delete(g.blocked, p)
	}
	g.mu.Unlock()
	return false
}

// allowed reports whether p is a member or an observer (ignoring the blocklist).
func (g *allowlistGater) allowed(p peer.ID) bool {
	if g.open {
		return true
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, m := g.members[p]
	_, o := g.observers[p]
	return m || o
}

// role is "member", "observer" or "" for a peer admitted only because the host is open.
func (g *allowlistGater) role(p peer.ID) string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if _, ok := g.members[p]; ok {
		return RoleMember
	}
	if _, ok := g.observers[p]; ok {
		return RoleObserver
	}
	return ""
}

func (g *allowlistGater) admits(p peer.ID) bool { return g.allowed(p) && !g.isBlocked(p) }

func (g *allowlistGater) InterceptPeerDial(p peer.ID) bool {
	if !g.admits(p) {
		g.log.Debug("refused to dial a peer that is not allowed or is cooling off", "peer", p)
		return false
	}
	return true
}

func (g *allowlistGater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

func (g *allowlistGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *allowlistGater) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	if !g.admits(p) {
		g.log.Debug("refused a connection from a peer that is not allowed or is cooling off", "peer", p,
			"direction", dir, "remote", addrs.RemoteMultiaddr())
		return false
	}
	return true
}

func (g *allowlistGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// list gives the members and observers.
func (g *allowlistGater) list() []peer.ID {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]peer.ID, 0, len(g.members)+len(g.observers))
	for p := range g.members {
		out = append(out, p)
	}
	for p := range g.observers {
		out = append(out, p)
	}
	return out
}
