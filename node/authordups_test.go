package node

import (
	"bytes"
	"testing"

	"github.com/guild-ledger/guild/consensus"
)

// A dropped copy of a vote is passed on only when it came from its author's own peer and its
// signature verifies; relayed copies, other message types and forgeries are not.
func TestAuthorVoteTakesOnlyTheAuthorsOwnCopy(t *testing.T) {
	c, n := validatorOfSyncChain(t)
	h := n.blocks.Height() + 1
	peers := []string{"peer-of-0", "peer-of-1", "peer-of-2", "peer-of-3"}
	s := *n.sched.Load()
	s.epochs = append([]epoch(nil), s.epochs...)
	s.epochs[0].Peers = peers
	n.sched.Store(&s)
	digest := consensus.DigestOf([]byte("some block"))
	vote := func(typ consensus.MsgType, from uint32) *consensus.Message {
		m := &consensus.Message{Type: typ, Height: h, From: from, Digest: digest}
		consensus.Sign(n.chainID, c.valKeys[from], m)
		return m
	}
	encode := func(m *consensus.Message) []byte {
		b, err := consensus.EncodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	commit := encode(vote(consensus.MsgCommit, 2))
	if m := n.authorVote(peers[2], commit); m == nil || m.From != 2 || m.Type != consensus.MsgCommit {
		t.Fatalf("the author's own copy of its commit: got %v", m)
	}
	if m := n.authorVote(peers[3], commit); m != nil {
		t.Fatal("a copy relayed by another validator's peer was taken as its author's")
	}
	if m := n.authorVote(peers[2], encode(vote(consensus.MsgPrepare, 2))); m == nil {
		t.Fatal("the author's own copy of its prepare was not taken")
	}
	forged := vote(consensus.MsgPrepare, 3)
	forged.Sig = bytes.Clone(forged.Sig)
	forged.Sig[9] ^= 1
	if m := n.authorVote(peers[3], encode(forged)); m != nil {
		t.Fatal("a forged vote was taken")
	}
	if m := n.authorVote(peers[2], encode(vote(consensus.MsgViewChange, 2))); m != nil {
		t.Fatal("a view change was taken: only votes are")
	}
	if m := n.authorVote(peers[2], []byte{0xff, 0x00}); m != nil {
		t.Fatal("malformed bytes were taken")
	}
}
