package p2p

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// pingInterval is how often every connected peer is pinged. libp2p records a round-trip time in
// the peerstore's moving average (LatencyEWMA) only when something pings; Peers reports it.
const pingInterval = 15 * time.Second

// startPinger pings each peer as it connects and every pingInterval after.
func (h *Host) startPinger() error {
	sub, err := h.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return fmt.Errorf("p2p: watch connections: %w", err)
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer sub.Close()
		tick := time.NewTicker(pingInterval)
		defer tick.Stop()
		for {
			select {
			case <-h.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				if ev := e.(event.EvtPeerConnectednessChanged); ev.Connectedness == network.Connected {
					h.goBackground(func() { h.pingOnce(ev.Peer) })
				}
			case <-tick.C:
				for _, p := range h.host.Network().Peers() {
					h.goBackground(func() { h.pingOnce(p) })
				}
			}
		}
	}()
	return nil
}

// pingOnce measures one round trip to p; ping.Ping records it in the peerstore.
func (h *Host) pingOnce(p peer.ID) {
	ctx, cancel := context.WithTimeout(h.ctx, dialTimeout)
	defer cancel()
	if res := <-ping.Ping(ctx, h.host, p); res.Error != nil {
		h.log.Debug("ping failed", "peer", p, "err", res.Error)
	}
}
