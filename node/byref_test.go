package node

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// fakeFetchNet answers tx fetch requests from in-process peers, in the order listed.
type fakeFetchNet struct {
	mu    sync.Mutex
	order []string
	peers map[string]func(hashes [][32]byte) ([][]byte, error)
	asked map[string]int
}

func (f *fakeFetchNet) ConnectedPeers() []string { return f.order }

func (f *fakeFetchNet) FetchTxs(_ context.Context, p string, hashes [][32]byte) ([][]byte, error) {
	f.mu.Lock()
	if f.asked == nil {
		f.asked = map[string]int{}
	}
	f.asked[p]++
	serve := f.peers[p]
	f.mu.Unlock()
	if serve == nil {
		return nil, p2p.ErrFetchUnavailable
	}
	return serve(hashes)
}

// holding serves the given transactions by hash.
func holding(txs [][]byte) func([][32]byte) ([][]byte, error) {
	byHash := map[[32]byte][]byte{}
	for _, tx := range txs {
		byHash[state.HashTx(tx)] = tx
	}
	return func(hashes [][32]byte) ([][]byte, error) {
		out := make([][]byte, len(hashes))
		for i, h := range hashes {
			out[i] = byHash[h]
		}
		return out, nil
	}
}

// refNode is validator 0 of a 4-validator chain with its verifier running and tx fetch faked.
func refNode(t *testing.T, net *fakeFetchNet) (*syncChain, *Node) {
	t.Helper()
	c, n := validatorOfSyncChain(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); n.verifier.run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait(); n.wg.Wait() })
	n.fetcher = net
	n.cfg.Consensus.FetchTimeoutMillis = 300
	return c, n
}

// sendRef makes the wire form of validator from's proposal of value by reference and passes it
// through the consensus topic's validator, as a peer's message would.
func sendRef(t *testing.T, c *syncChain, n *Node, from uint32, value []byte) *proposalRef {
	t.Helper()
	m := prePrepare(n.chainID, c.valKeys[from], from, n.blocks.Height()+1, 0, value)
	b, err := DecodeBlock(value)
	if err != nil {
		t.Fatal(err)
	}
	data, err := encodeProposalRef(m, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	verdict, decoded := n.validateConsensus("relay", data)
	if verdict != p2p.Accept {
		t.Fatalf("proposal by reference not accepted by the topic validator: %v", verdict)
	}
	return decoded.(*proposalRef)
}

// takeRef hands ref to the loop's handling, waits for its rebuild, and returns what the node
// signed and the rebuild's error.
func takeRef(t *testing.T, n *Node, ref *proposalRef) ([]consensus.Message, error) {
	t.Helper()
	n.takeProposalRef(context.Background(), "relay", ref)
	var r resolvedRef
	select {
	case r = <-n.resolvedCh:
	case <-time.After(30 * time.Second):
		t.Fatal("proposal by reference never resolved")
	}
	n.finishProposalRef(r)
	return drain(t, n), r.err
}

func prepared(signed []consensus.Message, d consensus.Digest) bool {
	for _, m := range signed {
		if m.Type == consensus.MsgPrepare && m.Digest == d {
			return true
		}
	}
	return false
}

func signedAnyPrepare(signed []consensus.Message) bool {
	for _, m := range signed {
		if m.Type == consensus.MsgPrepare {
			return true
		}
	}
	return false
}

func histogramCount(t *testing.T, n *Node, name string) (count uint64, sum float64) {
	t.Helper()
	mfs, err := n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0, 0
}

// A proposal by reference whose transactions are all pending here is rebuilt without a fetch
// and prepared; on the wire it is a small fraction of the block.
func TestProposalRefAllPresent(t *testing.T) {
	net := &fakeFetchNet{}
	c, n := refNode(t, net)
	txs := c.payments(t, 0, 1, 2, 3, 4, 5, 6, 7)
	pool(t, n, txs)
	value := nextValue(t, n, 1, txs)
	ref := sendRef(t, c, n, 1, value)
	signed, err := takeRef(t, n, ref)
	if err != nil || !prepared(signed, consensus.DigestOf(value)) {
		t.Fatalf("not prepared: %v", err)
	}
	if len(net.asked) != 0 {
		t.Fatalf("fetched %v with every transaction pending", net.asked)
	}
	if cnt, sum := histogramCount(t, n, "guild_proposal_ref_missing_txs"); cnt != 1 || sum != 0 {
		t.Fatalf("missing histogram: %d samples, sum %v", cnt, sum)
	}
	wire, _ := encodeProposalRef(&ref.Message, &Block{Header: ref.Header, Txs: txs}, nil)
	if len(wire) >= len(value) {
		t.Fatalf("by reference %d bytes, whole %d", len(wire), len(value))
	}
}

// Transactions the node lacks are fetched from a peer, verified and kept; the block is
// prepared. The node then serves them to others, and after the block commits, the mempool's
// copies leave by hash and a committed transaction gossiped again is not taken back.
func TestProposalRefFetchesMissing(t *testing.T) {
	net := &fakeFetchNet{order: []string{"honest"}}
	c, n := refNode(t, net)
	txs := c.payments(t, 0, 1, 2, 3, 4, 5)
	pool(t, n, txs[:2])
	net.peers = map[string]func([][32]byte) ([][]byte, error){"honest": holding(txs)}
	value := nextValue(t, n, 1, txs)
	signed, err := takeRef(t, n, sendRef(t, c, n, 1, value))
	if err != nil || !prepared(signed, consensus.DigestOf(value)) {
		t.Fatalf("not prepared: %v", err)
	}
	if cnt, sum := histogramCount(t, n, "guild_proposal_ref_fetched_txs"); cnt != 1 || sum != 4 {
		t.Fatalf("fetched histogram: %d samples, sum %v; want 1, 4", cnt, sum)
	}
	for _, tx := range txs[2:] {
		if !n.sigs.Verified(state.HashTx(tx)) {
			t.Fatal("a fetched transaction was not verified through the verifier")
		}
	}
	served := n.TxsByHash([][32]byte{state.HashTx(txs[0]), state.HashTx(txs[5]), {9}})
	if !bytes.Equal(served[0], txs[0]) || !bytes.Equal(served[1], txs[5]) || served[2] != nil {
		t.Fatal("the node does not serve what it holds")
	}

	c.decide(t, n, value)
	if n.pool.Size() != 0 {
		t.Fatalf("mempool holds %d after the block, want 0", n.pool.Size())
	}
	if err := n.checkTx(mustDecode(t, txs[0])); !errors.Is(err, state.ErrBadNonce) {
		t.Fatalf("a committed transaction gossiped again: %v, want ErrBadNonce", err)
	}
	if got := n.TxsByHash([][32]byte{state.HashTx(txs[0])}); !bytes.Equal(got[0], txs[0]) {
		t.Fatal("a just-committed transaction is no longer served to peers a block behind")
	}
}

func mustDecode(t *testing.T, raw []byte) *state.Tx {
	t.Helper()
	tx, err := state.DecodeTx(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// Transactions no peer serves: after fetch_timeout_ms the proposal is given up, nothing is
// prepared, and the failure is counted.
func TestProposalRefUnfetchableNotPrepared(t *testing.T) {
	net := &fakeFetchNet{order: []string{"empty", "gone"}}
	c, n := refNode(t, net)
	txs := c.payments(t, 0, 1, 2)
	pool(t, n, txs[:1])
	net.peers = map[string]func([][32]byte) ([][]byte, error){"empty": holding(nil)}
	value := nextValue(t, n, 1, txs)
	start := time.Now()
	signed, err := takeRef(t, n, sendRef(t, c, n, 1, value))
	if !errors.Is(err, ErrTxsUnavailable) {
		t.Fatalf("rebuild: %v, want ErrTxsUnavailable", err)
	}
	if signedAnyPrepare(signed) {
		t.Fatal("prepared a proposal whose transactions it does not hold")
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("giving up took %v with a 300 ms bound", el)
	}
	if got := counterValue(t, n, "guild_proposal_ref_failed_total", "unavailable"); got != 1 {
		t.Fatalf("guild_proposal_ref_failed_total{unavailable} = %v", got)
	}
	if n.core.Status().Proposal {
		t.Fatal("the core holds a proposal")
	}
	// The same proposal with its transactions arriving by gossip later is rebuilt then.
	pool(t, n, txs[1:])
	signed, err = takeRef(t, n, sendRef(t, c, n, 1, value))
	if err != nil || !prepared(signed, consensus.DigestOf(value)) {
		t.Fatalf("not prepared once the transactions arrived: %v", err)
	}
}

// A peer that answers a fetch with other bytes (here another valid transaction of the same
// sender) is not believed: its answer is discarded and counted, and the transactions come from
// an honest peer. With only the hostile peer, nothing is prepared.
func TestProposalRefHostileFetchPeerRefused(t *testing.T) {
	net := &fakeFetchNet{order: []string{"evil", "honest"}}
	c, n := refNode(t, net)
	txs := c.payments(t, 0, 1, 2)
	other := [][]byte{transfer(t, c.gen.ChainID, c.payer, 1, state.Address{77}, 5)}
	evilAnswered := make(chan struct{})
	var once sync.Once
	evil := func(hashes [][32]byte) ([][]byte, error) {
		defer once.Do(func() { close(evilAnswered) })
		out := make([][]byte, len(hashes))
		for i := range out {
			out[i] = other[0]
		}
		return out, nil
	}
	honest := holding(txs)
	// Peers other than the leader are asked at once; the honest one answers after the hostile
	// one, so that the hostile answer is there to be refused.
	slowHonest := func(hashes [][32]byte) ([][]byte, error) {
		select {
		case <-evilAnswered:
		case <-time.After(10 * time.Second):
		}
		return honest(hashes)
	}
	net.peers = map[string]func([][32]byte) ([][]byte, error){"evil": evil, "honest": slowHonest}
	pool(t, n, txs[:1])
	value := nextValue(t, n, 1, txs)
	signed, err := takeRef(t, n, sendRef(t, c, n, 1, value))
	if err != nil || !prepared(signed, consensus.DigestOf(value)) {
		t.Fatalf("not prepared with an honest peer available: %v", err)
	}
	if got := counterValue(t, n, "guild_tx_fetch_bad_answers_total", ""); got < 1 {
		t.Fatalf("guild_tx_fetch_bad_answers_total = %v", got)
	}
	if n.sigs.Verified(state.HashTx(other[0])) {
		t.Fatal("the hostile peer's transaction was verified and kept")
	}

	// Next height, only the hostile peer.
	c.decide(t, n, value)
	net.order = []string{"evil"}
	more := c.payments(t, 3, 4)
	value2 := nextValue(t, n, n.leadersAt(n.blocks.Height()+1).leader, more)
	leader := n.leadersAt(n.blocks.Height() + 1).leader
	if leader == 0 {
		t.Skip("this node leads height 2")
	}
	signed, err = takeRef(t, n, sendRef(t, c, n, leader, value2))
	if !errors.Is(err, ErrTxsUnavailable) || signedAnyPrepare(signed) {
		t.Fatalf("with only a hostile peer: %v, prepared %v", err, signedAnyPrepare(signed))
	}
}

// What a relay can change in the unsigned part of a proposal by reference makes the rebuilt
// block miss the signed digest, and nothing is prepared; malformed or badly signed wire forms,
// and ones listing more transactions than a block may hold, are rejected by the topic validator.
func TestProposalRefForgeriesRefused(t *testing.T) {
	net := &fakeFetchNet{}
	c, n := refNode(t, net)
	txs := c.payments(t, 0, 1)
	pool(t, n, txs)
	value := nextValue(t, n, 1, txs)
	m := prePrepare(n.chainID, c.valKeys[1], 1, 1, 0, value)
	b, _ := DecodeBlock(value)

	// A changed header time: well formed, correctly signed, the wrong block.
	forged := *b
	forged.Header.Time++
	data, _ := encodeProposalRef(m, &forged, nil)
	verdict, decoded := n.validateConsensus("relay", data)
	if verdict != p2p.Accept {
		t.Fatalf("a changed header is only found out by rebuilding: verdict %v", verdict)
	}
	signed, err := takeRef(t, n, decoded.(*proposalRef))
	if !errors.Is(err, ErrBadProposalRef) || signedAnyPrepare(signed) {
		t.Fatalf("forged header: %v, prepared %v", err, signedAnyPrepare(signed))
	}
	if got := counterValue(t, n, "guild_proposal_ref_failed_total", "invalid"); got != 1 {
		t.Fatalf("guild_proposal_ref_failed_total{invalid} = %v", got)
	}

	reject := func(name string, data []byte) {
		t.Helper()
		if verdict, _ := n.validateConsensus("relay", data); verdict != p2p.Reject {
			t.Fatalf("%s: verdict %v, want Reject", name, verdict)
		}
	}
	// Hashes that are not the header's.
	swapped := *b
	swapped.Txs = [][]byte{txs[1], txs[0]}
	data, _ = encodeProposalRef(m, &swapped, nil)
	reject("reordered hashes", data)
	// Another validator's signature.
	wrongSig := *m
	wrongSig.Sig = prePrepare(n.chainID, c.valKeys[2], 1, 1, 0, value).Sig
	data, _ = encodeProposalRef(&wrongSig, b, nil)
	reject("bad signature", data)
	// More hashes than a block may hold (the header committing to them).
	huge := &proposalRef{Message: *m, Header: b.Header, Txs: make([]state.Hash, MaxBlockTxsLimit+1)}
	huge.Message.Value = nil
	huge.Header.TxsHash = txsHashOf(huge.Txs)
	enc, err := state.Marshal(huge)
	if err != nil {
		t.Fatal(err)
	}
	reject("oversize", append([]byte{proposalRefPrefix}, enc...))
	reject("garbage", []byte{proposalRefPrefix, 1, 2, 3})
	// A prepare dressed as a proposal.
	vote := *m
	vote.Type = consensus.MsgPrepare
	data, _ = encodeProposalRef(&vote, b, nil)
	reject("not a pre-prepare", data)
}

// The leader sends its proposal by reference unless consensus.proposals is "full"; every other
// message goes as before.
func TestProposalRefOnlyForPrePrepares(t *testing.T) {
	c, n := validatorOfSyncChain(t)
	txs := c.payments(t, 0)
	value := nextValue(t, n, 0, txs)
	m := prePrepare(n.chainID, c.valKeys[0], 0, 1, 0, value)
	data, err := n.encodeOutgoing(m)
	if err != nil || !isProposalRef(data) {
		t.Fatalf("pre-prepare not sent by reference (%v)", err)
	}
	n.cfg.Consensus.Proposals = ProposalsFull
	if data, err = n.encodeOutgoing(m); err != nil || isProposalRef(data) {
		t.Fatalf("full proposals configured, sent by reference (%v)", err)
	}
	n.cfg.Consensus.Proposals = ProposalsByReference
	commit := &consensus.Message{Type: consensus.MsgCommit, Height: 1, From: 0, Digest: m.Digest}
	if data, _ = n.encodeOutgoing(commit); isProposalRef(data) {
		t.Fatal("a commit sent by reference")
	}
}

// A proposal by reference signed by a validator that does not lead the view costs no fetch: the
// core would refuse it, and a faulty validator must not hold up the leader's rebuild.
func TestProposalRefFromNonLeaderNotFetched(t *testing.T) {
	net := &fakeFetchNet{order: []string{"honest"}}
	c, n := refNode(t, net)
	txs := c.payments(t, 0, 1)
	net.peers = map[string]func([][32]byte) ([][]byte, error){"honest": holding(txs)}
	value := nextValue(t, n, 2, txs)
	n.takeProposalRef(context.Background(), "relay", sendRef(t, c, n, 2, value))
	if len(n.refs.resolving) != 0 || len(net.asked) != 0 {
		t.Fatalf("rebuilding %d, asked %v for a non-leader's proposal", len(n.refs.resolving), net.asked)
	}
}

// Transactions the leader took in just before proposing travel inline: a validator that lacks
// them needs no fetch, and verifies them as fetched ones. An inline transaction that is not the
// one listed makes the proposal malformed.
func TestProposalRefInlineRecentTxs(t *testing.T) {
	net := &fakeFetchNet{}
	c, n := refNode(t, net)
	txs := c.payments(t, 0, 1, 2, 3)
	pool(t, n, txs[:2])
	value := nextValue(t, n, 1, txs)
	m := prePrepare(n.chainID, c.valKeys[1], 1, 1, 0, value)
	b, _ := DecodeBlock(value)
	recent := func([]state.Hash) []int { return []int{2, 3} }
	data, err := encodeProposalRef(m, b, recent)
	if err != nil {
		t.Fatal(err)
	}
	verdict, decoded := n.validateConsensus("relay", data)
	if verdict != p2p.Accept {
		t.Fatalf("verdict %v", verdict)
	}
	signed, err := takeRef(t, n, decoded.(*proposalRef))
	if err != nil || !prepared(signed, consensus.DigestOf(value)) {
		t.Fatalf("not prepared: %v", err)
	}
	if len(net.asked) != 0 {
		t.Fatalf("fetched %v though the missing transactions came inline", net.asked)
	}
	if !n.sigs.Verified(state.HashTx(txs[3])) {
		t.Fatal("an inline transaction was not verified through the verifier")
	}
	ref := decoded.(*proposalRef)
	ref.Inline[1].Raw = txs[0]
	enc, _ := state.Marshal(ref)
	if verdict, _ := n.validateConsensus("relay", append([]byte{proposalRefPrefix}, enc...)); verdict != p2p.Reject {
		t.Fatalf("a wrong inline transaction: verdict %v, want Reject", verdict)
	}
}
