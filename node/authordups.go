package node

import (
	"context"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
)

// A validator is "heard" (alive, consensus.Core's silent and away) only through a copy of its
// message that came from its own peer: any peer can pass on or replay its messages (markRelayed).
// Pubsub delivers the first copy of a message and drops the later ones, so when another peer's
// relay of a vote arrives before the author's own copy, the author's copy is dropped and the
// author is not heard. On a loaded machine that happened often enough that a live validator
// looked silent to one peer for two view timeouts, and that peer changed view alone when the
// validator next led (the simulator's 4-slow-link-idle). So the votes among the dropped copies
// that came from their author's own peer are handed to the loop as well.

// authorDuplicatesBuffer bounds the author's copies waiting for the loop; more are dropped.
const authorDuplicatesBuffer = 64

// authorDuplicates reads the consensus topic's dropped copies and passes on the author's own
// PREPAREs and COMMITs, the votes every validator sends at every height, verified like a first
// copy (the signature memo usually answers at once: the first copy's check filled it).
func (n *Node) authorDuplicates(ctx context.Context) {
	defer n.wg.Done()
	in := n.host.ConsensusDuplicates()
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-in:
			m := n.authorVote(d.From, d.Data)
			if m == nil {
				continue
			}
			select {
			case n.authorDups <- p2p.Message{From: d.From, Data: d.Data, Decoded: m}:
			default:
			}
		}
	}
}

// authorVote decodes data, a copy of a consensus-topic message that peer from sent, and returns
// it if it is a PREPARE or COMMIT whose author's node is from and whose signature verifies;
// nil otherwise. Off the loop.
func (n *Node) authorVote(from string, data []byte) *consensus.Message {
	if from == n.peerID || len(data) == 0 || isEvidence(data) || isProposalRef(data) {
		return nil
	}
	m, err := consensus.DecodeMessage(data, MaxBlockBytes+64<<10)
	if err != nil || (m.Type != consensus.MsgPrepare && m.Type != consensus.MsgCommit) {
		return nil
	}
	peers := n.sched.Load().at(m.Height).Peers
	if int(m.From) >= len(peers) || peers[m.From] != from || n.outsideWindow(from, m) != "" {
		return nil
	}
	vals, _ := n.validatorsFinal(m.Height)
	if consensus.VerifyMessageWith(n.chainID, vals, m, n.consensusSigs) != nil {
		return nil
	}
	return m
}
