package p2p

import (
	"testing"
	"time"
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
