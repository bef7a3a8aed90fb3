package p2p

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

const (
	// checkInterval is how often a connected bootstrap peer is checked, in case a disconnection
	// event was missed.
	checkInterval = time.Second
	// Redials of an unreachable bootstrap peer back off from minRedial to maxRedial: a validator
	// that restarts is back in the mesh within a couple of seconds.
	minRedial = 500 * time.Millisecond
	maxRedial = 2 * time.Second
	// stableAfter is how long a connection must hold before redials are quick again.
	stableAfter = 5 * time.Second
	// dialTimeout bounds one dial attempt.
	dialTimeout = 5 * time.Second
)

// startBootstrap starts one dialer per bootstrap peer, and a watcher that wakes a peer's dialer
// the moment its connection drops, so a consensus link is not down for a whole checkInterval.
func (h *Host) startBootstrap(peers []peer.AddrInfo) error {
	if len(peers) == 0 {
		return nil
	}
	wake := make(map[peer.ID]chan struct{}, len(peers))
	for _, pi := range peers {
		wake[pi.ID] = make(chan struct{}, 1)
	}
	err := h.watch(new(event.EvtPeerConnectednessChanged), "connections", func(e any) {
		ev := e.(event.EvtPeerConnectednessChanged)
		if ch := wake[ev.Peer]; ch != nil && ev.Connectedness != network.Connected {
			select {
			case ch <- struct{}{}:
			default: // already woken
			}
		}
	})
	if err != nil {
		return err
	}
	for _, pi := range peers {
		h.wg.Add(1)
		go h.keepConnected(pi, wake[pi.ID])
	}
	return nil
}

// keepConnected dials a bootstrap peer whenever it is not connected, until Close. Dials are at
// least backoff apart even when a disconnection wakes it, and backoff falls back to minRedial
// only once a connection has held for stableAfter: a peer that accepts our handshake and then
// drops us (its gater refuses us) is redialed every maxRedial, not in a tight loop.
func (h *Host) keepConnected(pi peer.AddrInfo, wake <-chan struct{}) {
	defer h.wg.Done()
	// Permanent: the swarm must not forget a configured address while the peer is down.
	h.host.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.PermanentAddrTTL)
	// The swarm's own dial backoff (5 s, growing quadratically to 5 min) would override ours.
	dialCtx := network.WithForceDirectDial(h.ctx, "guild bootstrap peer")
	backoff := minRedial
	var lastDial time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-timer.C:
		case <-wake:
		}
		if h.host.Network().Connectedness(pi.ID) == network.Connected {
			if time.Since(lastDial) >= stableAfter {
				backoff = minRedial
			}
			timer.Reset(checkInterval)
			continue
		}
		if early := backoff - time.Since(lastDial); early > 0 {
			timer.Reset(early)
			continue
		}
		lastDial = time.Now()
		ctx, cancel := context.WithTimeout(dialCtx, dialTimeout)
		err := h.host.Connect(ctx, pi)
		cancel()
		switch {
		case h.ctx.Err() != nil:
			return
		case err != nil:
			h.log.Debug("bootstrap dial failed", "peer", pi.ID, "retry_in", backoff, "err", err)
			timer.Reset(backoff)
		default:
			h.log.Debug("connected to bootstrap peer", "peer", pi.ID)
			timer.Reset(checkInterval)
		}
		backoff = min(2*backoff, maxRedial)
	}
}
