package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// PeerEvent is a peer's connectedness changing: Connected is false once its last connection has
// closed, true when it has one again.
type PeerEvent struct {
	Peer      string
	Connected bool
}

// peerEventBuffer bounds the events not yet read; past it they are dropped and counted.
const peerEventBuffer = 256

// PeerEvents delivers the host's peers connecting and disconnecting. A killed node's TCP
// connections close at once, so its peers hear of it within milliseconds, long before a view
// timeout: consensus gives a disconnected leader up sooner (consensus.Core.SetPeerDown).
func (h *Host) PeerEvents() <-chan PeerEvent { return h.peerEvents }

// PeerEventsDropped counts events dropped because the reader fell behind.
func (h *Host) PeerEventsDropped() uint64 { return h.peerEventsDropped.Load() }

func (h *Host) startPeerEvents() error {
	return h.watch(new(event.EvtPeerConnectednessChanged), "connections", func(e any) {
		ev := e.(event.EvtPeerConnectednessChanged)
		var out PeerEvent
		switch ev.Connectedness {
		case network.Connected:
			out = PeerEvent{Peer: ev.Peer.String(), Connected: true}
		case network.NotConnected:
			out = PeerEvent{Peer: ev.Peer.String()}
		default:
			return // limited (relayed) connections say nothing either way
		}
		select {
		case h.peerEvents <- out:
		default:
			h.peerEventsDropped.Add(1)
		}
	})
}

// watch subscribes to the host's events of evtType's type and hands each to handle, on one
// goroutine, until Close.
func (h *Host) watch(evtType any, what string, handle func(any)) error {
	sub, err := h.host.EventBus().Subscribe(evtType)
	if err != nil {
		return fmt.Errorf("p2p: watch %s: %w", what, err)
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-h.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				handle(e)
			}
		}
	}()
	return nil
}

// A pair of nodes often holds two connections, one over TCP and one over QUIC (most likely: at
// start both dial, and a TCP dial refused by a peer not yet listening falls back to QUIC a second
// later, while the peer's own TCP dial succeeds). A killed process's TCP connection closes at once, but
// its QUIC connection lives on until its idle timeout, so the peer never counted as
// disconnected and a killed leader held its height for a whole view timeout (a kill-the-leader
// run: 2 s without a block). When a peer's last TCP connection closes, its other connections are
// closed too: the peer is then reported disconnected at once, and if it is alive after all (its
// TCP connection dropped for some other reason) the bootstrap loop reconnects it, costing at
// most an early view change. A peer reached over QUIC alone is left alone.
func (h *Host) closeOthersWithLastTCP() {
	h.host.Network().Notify(&network.NotifyBundle{DisconnectedF: func(n network.Network, c network.Conn) {
		stale := connsLeftWithoutTCP(c, n.ConnsToPeer(c.RemotePeer()))
		if len(stale) == 0 {
			return
		}
		h.log.Debug("closing a peer's other connections with its last TCP connection", "peer", c.RemotePeer(), "closing", len(stale))
		go func() { // not on the swarm's notifying goroutine
			for _, s := range stale {
				_ = s.Close()
			}
		}()
	}})
}

// connsLeftWithoutTCP is what to close once closed has closed: the peer's other open connections,
// if closed was over TCP and none of them is.
func connsLeftWithoutTCP(closed network.Conn, conns []network.Conn) []network.Conn {
	if !overTCP(closed) {
		return nil
	}
	var left []network.Conn
	for _, c := range conns {
		if c == closed || c.IsClosed() {
			continue
		}
		if overTCP(c) {
			return nil
		}
		left = append(left, c)
	}
	return left
}

func overTCP(c network.Conn) bool {
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_TCP)
	return err == nil
}
