package p2p

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// The optional Kademlia DHT lets members across the internet find each other by peer ID: a member
// that reaches any one other member looks the rest up. It is private to the chain (its own
// protocol prefix, no providers or values, only allowed peers get past the gater), never the
// public IPFS DHT.
const (
	dhtFirstSearch = time.Second
	dhtMaxSearch   = 30 * time.Second // searches for missing members back off to this
)

func dhtPrefix(chainID string) protocol.ID {
	sum := sha256.Sum256([]byte(chainID))
	return protocol.ID("/guild/" + hex.EncodeToString(sum[:6]))
}

// startDHT joins the chain's DHT, seeded with the peers this host keeps connected, and starts
// looking up the allowed peers it is not connected to.
func (h *Host) startDHT(chainID string, seeds []peer.AddrInfo) error {
	d, err := dht.New(h.host,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(dhtPrefix(chainID)),
		dht.BootstrapPeers(seeds...),
		dht.DisableProviders(),
		dht.DisableValues(),
	)
	if err != nil {
		return fmt.Errorf("p2p: DHT: %w", err)
	}
	if err := d.Bootstrap(h.ctx); err != nil {
		_ = d.Close()
		return fmt.Errorf("p2p: DHT bootstrap: %w", err)
	}
	h.dht = d
	h.wg.Add(1)
	go h.searchMembers()
	return nil
}

// searchMembers looks up, over the DHT, each allowed peer that is not connected, first soon after
// start and then less and less often (to dhtMaxSearch).
func (h *Host) searchMembers() {
	defer h.wg.Done()
	wait := dhtFirstSearch
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-timer.C:
		}
		for _, p := range h.gater.list() {
			if p == h.host.ID() || h.host.Network().Connectedness(p) == network.Connected {
				continue
			}
			ctx, cancel := context.WithTimeout(h.ctx, dialTimeout)
			pi, err := h.dht.FindPeer(ctx, p)
			cancel()
			if err != nil {
				h.log.Debug("DHT lookup failed", "peer", p, "err", err)
				continue
			}
			h.found(pi, "dht")
		}
		wait = min(2*wait, dhtMaxSearch)
		timer.Reset(wait)
	}
}
