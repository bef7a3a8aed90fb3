package p2p

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// mdnsServiceName is the DNS-SD service the nodes of one chain announce. The chain ID is hashed
// because it may hold characters a DNS label may not.
func mdnsServiceName(chainID string) string {
	sum := sha256.Sum256([]byte(chainID))
	return "_guild-" + hex.EncodeToString(sum[:6]) + "._udp"
}

// mdnsRefresh is how often a host that is missing allowed peers starts its mDNS service again.
// The resolver stops querying once it has heard one answer (its own host's counts), and a peer's
// announcement is sent only as it starts: one sent before this host listened, or lost, is never
// repeated, and two hosts could run side by side without ever finding each other. Starting the
// service again announces this host and queries anew. A variable for tests.
var mdnsRefresh = 10 * time.Second

// startMDNS announces this host on the local network and dials the allowed peers it hears of.
func (h *Host) startMDNS(chainID string) error {
	svc := mdns.NewMdnsService(h.host, mdnsServiceName(chainID), mdnsNotifee{h})
	if err := svc.Start(); err != nil {
		return fmt.Errorf("p2p: mDNS: %w", err)
	}
	h.bgMu.Lock()
	h.mdns = svc
	h.bgMu.Unlock()
	h.goBackground(func() { h.refreshMDNS(chainID) })
	return nil
}

// refreshMDNS starts the mDNS service again every mdnsRefresh while allowed peers are missing.
func (h *Host) refreshMDNS(chainID string) {
	t := time.NewTicker(mdnsRefresh)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		if !h.missingPeers() {
			continue
		}
		svc := mdns.NewMdnsService(h.host, mdnsServiceName(chainID), mdnsNotifee{h})
		if err := svc.Start(); err != nil {
			h.log.Debug("restarting mDNS failed", "err", err)
			continue
		}
		h.bgMu.Lock()
		old := h.mdns
		if h.closed {
			old = svc // shutdown has closed the service it saw; this one is not needed
		} else {
			h.mdns = svc
		}
		h.bgMu.Unlock()
		if old != nil {
			_ = old.Close()
		}
	}
}

// missingPeers reports whether an allowed peer is not connected (any peer, on an open network
// with none connected).
func (h *Host) missingPeers() bool {
	self, net := h.host.ID(), h.host.Network()
	if h.gater.open {
		return len(net.Peers()) == 0
	}
	for _, p := range h.gater.list() {
		if p != self && net.Connectedness(p) != network.Connected {
			return true
		}
	}
	return false
}

type mdnsNotifee struct{ h *Host }

// HandlePeerFound is called by the mDNS resolver, on a goroutine of its own, for every peer
// announcement heard (repeatedly for the same peer).
func (n mdnsNotifee) HandlePeerFound(pi peer.AddrInfo) { n.h.found(pi, "mdns") }

// found dials a discovered peer if it is allowed and not yet connected. Its addresses are
// remembered once identify confirms them (watchIdentify), not on the word of a discovery service.
func (h *Host) found(pi peer.AddrInfo, via string) {
	if pi.ID == h.host.ID() || !h.gater.admits(pi.ID) || len(pi.Addrs) == 0 {
		return
	}
	if h.host.Network().Connectedness(pi.ID) == network.Connected {
		return
	}
	h.goBackground(func() {
		h.host.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.TempAddrTTL)
		ctx, cancel := context.WithTimeout(h.ctx, dialTimeout)
		defer cancel()
		if err := h.host.Connect(ctx, pi); err != nil {
			h.log.Debug("dialing a discovered peer failed", "via", via, "peer", pi.ID, "err", err)
			return
		}
		h.log.Info("connected to a discovered peer", "via", via, "peer", pi.ID)
	})
}

// watchIdentify remembers, in the address book, the listen addresses that allowed peers announce.
func (h *Host) watchIdentify() error {
	if h.book.path == "" {
		return nil
	}
	return h.watch(new(event.EvtPeerIdentificationCompleted), "identify", func(e any) {
		ev := e.(event.EvtPeerIdentificationCompleted)
		if !h.gater.allowed(ev.Peer) {
			return
		}
		if err := h.book.learn(ev.Peer, ev.ListenAddrs); err != nil {
			h.log.Warn("saving the address book", "err", err)
		}
	})
}
