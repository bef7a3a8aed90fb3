package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
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
