package p2p

import (
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

// A host alone has no peer in the transactions topic, so a publication reaches no one and says
// nothing of it; once a peer subscribes, TxPeersJoined tells the node, which gossips again what
// it published before.
func TestGossipTxPeersJoinedSignalsASubscriber(t *testing.T) {
	a := newHost(t, nil)
	if n := a.TxPeers(); n != 0 {
		t.Fatalf("a lone host has %d transaction topic peers", n)
	}
	select {
	case <-a.TxPeersJoined():
		t.Fatal("a join signalled with no peer")
	default:
	}
	b := newHost(t, bootstrapTo(a))
	receive(t, a.TxPeersJoined(), "the join of "+b.ID())
	if n := a.TxPeers(); n != 1 {
		t.Fatalf("after the join, %d transaction topic peers, want 1", n)
	}
}

// Pubsub's own drops of transaction messages (no verdict of ours) are counted by reason; those
// of other topics and the node's own verdicts are not.
func TestGossipTxDropsCountedByReason(t *testing.T) {
	tr := &linkTracer{txsTopic: "txs"}
	txs, other := "txs", "consensus"
	msg := func(topic string) *pubsub.Message { return &pubsub.Message{Message: &pb.Message{Topic: &topic}} }
	tr.RejectMessage(msg(txs), pubsub.RejectValidationQueueFull)
	tr.RejectMessage(msg(txs), pubsub.RejectValidationThrottled)
	tr.RejectMessage(msg(txs), pubsub.RejectValidationThrottled)
	tr.RejectMessage(msg(txs), pubsub.RejectValidationIgnored) // our own Ignore: not a drop
	tr.RejectMessage(msg(other), pubsub.RejectValidationQueueFull)
	tr.UndeliverableMessage(msg(txs))
	tr.UndeliverableMessage(msg(other))
	rpc := &pubsub.RPC{RPC: pb.RPC{Publish: []*pb.Message{msg(txs).Message, msg(txs).Message, msg(other).Message}}}
	tr.DropRPC(rpc, "peer")
	want := [numTxDropReasons]uint64{TxDropValidationQueue: 1, TxDropThrottled: 2, TxDropUndeliverable: 1, TxDropOutbound: 2}
	for i := range want {
		if got := tr.txDrops[i].Load(); got != want[i] {
			t.Errorf("%s: %d, want %d", TxDropReasons[i], got, want[i])
		}
	}
}
