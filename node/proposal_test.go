package node

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// validatorOfSyncChain opens, without running it, the node of validator 0 ("a") of a 4-validator
// chain whose other keys the test holds: the test steps signed messages into its core as the
// loop would, and plays the other validators, hostile ones included.
func validatorOfSyncChain(t testing.TB) (*syncChain, *Node) {
	t.Helper()
	c := newSyncChain(t)
	home := c.home(t)
	if err := WriteKeyFile(filepath.Join(home, ValidatorKeyFile), c.valKeys[0]); err != nil {
		t.Fatal(err)
	}
	n, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.closeStores)
	if err := n.startCore(nil); err != nil {
		t.Fatal(err)
	}
	if n.self != 0 {
		t.Fatalf("node is validator %d, want 0", n.self)
	}
	return c, n
}

// payments are the payer's transfers with the given nonces, in that order.
func (c *syncChain) payments(t *testing.T, nonces ...uint64) [][]byte {
	t.Helper()
	var txs [][]byte
	for _, nonce := range nonces {
		txs = append(txs, transfer(t, c.gen.ChainID, c.payer, nonce, state.Address{byte(nonce + 1)}, 1))
	}
	return txs
}

// pool puts txs in n's mempool as admission would.
func pool(t *testing.T, n *Node, txs [][]byte) {
	t.Helper()
	for _, raw := range txs {
		tx, err := state.DecodeTx(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.pool.Add(raw, state.HashTx(raw), tx); err != nil {
			t.Fatal(err)
		}
	}
}

// blockValue encodes block height on the given parent (hash, state root, time), scheduled to be
// led by leader with no one skipped.
func blockValue(t testing.TB, chainID string, height uint64, prev, root, receipts state.Hash, timeMs int64, proposer, leader uint32, txs [][]byte) []byte {
	t.Helper()
	if txs == nil {
		txs = [][]byte{}
	}
	b := Block{Header: Header{ChainID: chainID, Height: height, Time: timeMs, PrevHash: prev, StateRoot: root,
		TxsHash: TxsHash(txs), Proposer: proposer, Leader: leader, ReceiptsRoot: receipts}, Txs: txs}
	v, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// nextValue is block n's height + 1 on n's tip, by proposer, with the leader schedule n computes.
func nextValue(t testing.TB, n *Node, proposer uint32, txs [][]byte) []byte {
	t.Helper()
	h := n.blocks.Height() + 1
	turn := n.leadersAt(h)
	if len(turn.skips) > 0 {
		t.Fatalf("height %d skips leaders %v; the tests' blocks skip none", h, turn.skips)
	}
	return blockValue(t, n.chainID, h, n.lastHash, n.st.Root(), n.st.ReceiptsRoot(), n.lastTime+1, proposer, turn.leader, txs)
}

func prePrepare(chainID string, key ed25519.PrivateKey, from uint32, height, view uint64, value []byte) *consensus.Message {
	m := &consensus.Message{Type: consensus.MsgPrePrepare, Height: height, View: view, From: from, Value: value, Digest: consensus.DigestOf(value)}
	consensus.Sign(chainID, key, m)
	return m
}

// decide steps a decision for value at n's next height, certified by validators 1-3, and
// handles the Ready as the loop does.
func (c *syncChain) decide(t *testing.T, n *Node, value []byte) {
	t.Helper()
	h := n.blocks.Height() + 1
	cert := certify(c.gen.ChainID, c.valKeys[:3], h, consensus.DigestOf(value))
	if err := n.stepMessage(ptr(consensus.DecisionMessage(3, consensus.Committed{Height: h, Value: value, Certificate: cert}))); err != nil {
		t.Fatalf("decision for height %d: %v", h, err)
	}
	drain(t, n)
	if n.blocks.Height() != h {
		t.Fatalf("height %d not committed", h)
	}
}

func ptr[T any](v T) *T { return &v }

// drain handles the core's Readies as the loop does, and returns what the node signed.
func drain(t *testing.T, n *Node) []consensus.Message {
	t.Helper()
	var signed []consensus.Message
	for n.core.HasReady() {
		rd := n.core.Ready()
		signed = append(signed, rd.Persist...)
		if err := n.handleReady(rd); err != nil {
			t.Fatal(err)
		}
		n.advanceCore()
	}
	// As the loop does once the core has nothing more: the last block's results.
	if err := n.recordResults(); err != nil {
		t.Fatal(err)
	}
	return signed
}

// txStatus asks the node's API for a transaction's status.
func txStatus(t *testing.T, n *Node, raw []byte) api.TxStatus {
	t.Helper()
	rec := httptest.NewRecorder()
	n.apiHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/txs/"+state.HashTx(raw).String(), nil))
	var out api.TxStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The attack of issue #9, in process: leaders propose valid, signed blocks holding the pending
// transactions with the sender's nonces in descending order. Every one of them is refused before
// this validator prepares, whether it arrives on time or before the height below is committed,
// and recorded against its leader (log, metric, GET /v1/offences with the signed proposal);
// the transactions stay pending and a correct block commits them all.
func TestBadOrderLeaderRefusedAndRecorded(t *testing.T) {
	c, n := validatorOfSyncChain(t)
	ascending := c.payments(t, 0, 1, 2, 3, 4)
	pool(t, n, ascending)
	descending := c.payments(t, 4, 3, 2, 1, 0)

	// Height 1, view 0 is led by validator 1 ("b").
	bad := nextValue(t, n, 1, descending)
	err := n.stepMessage(prePrepare(n.chainID, c.valKeys[1], 1, 1, 0, bad))
	if !errors.Is(err, consensus.ErrInvalidValue) || !errors.Is(err, ErrTxWouldFail) || !errors.Is(err, state.ErrNonceAhead) {
		t.Fatalf("descending nonces: Step = %v, want ErrInvalidValue, ErrTxWouldFail and ErrNonceAhead", err)
	}
	for _, m := range drain(t, n) {
		if m.Type == consensus.MsgPrepare {
			t.Fatal("the node prepared the refused proposal")
		}
	}
	// The same leader's next proposal for the slot is not even executed.
	other := nextValue(t, n, 1, descending[:2])
	if err := n.stepMessage(prePrepare(n.chainID, c.valKeys[1], 1, 1, 0, other)); !errors.Is(err, errCaughtLeader) {
		t.Fatalf("second proposal of a caught leader: %v", err)
	}

	// Validator 2 ("c") leads height 2: its bad proposal arrives before height 1 is committed.
	root1, receipts1 := dryRunRoot(t, n, 1, ascending)
	value1 := nextValue(t, n, 1, ascending)
	early := blockValue(t, n.chainID, 2, state.Hash(consensus.DigestOf(value1)), root1, receipts1, n.lastTime+2, 2, 2, c.payments(t, 6, 5))
	if err := n.stepMessage(prePrepare(n.chainID, c.valKeys[2], 2, 2, 0, early)); err != nil {
		t.Fatalf("proposal for the next height: %v", err)
	}
	if n.pool.Size() != 5 {
		t.Fatalf("mempool holds %d after a refused proposal, want 5", n.pool.Size())
	}
	c.decide(t, n, value1)
	if n.pool.Size() != 0 {
		t.Fatalf("mempool holds %d after the block committing them, want 0", n.pool.Size())
	}
	for _, raw := range ascending {
		if st := txStatus(t, n, raw); st.Status != api.TxCommitted || st.Height != 1 {
			t.Fatalf("tx after block 1: %+v", st)
		}
	}

	list := n.badProposals.all()
	if len(list) != 2 {
		t.Fatalf("%d offences on record, want 2", len(list))
	}
	for i, want := range []struct {
		name   string
		index  uint32
		height uint64
		value  []byte
	}{{"b", 1, 1, bad}, {"c", 2, 2, early}} {
		o := list[i]
		if o.Validator != want.name || o.ValidatorIndex != want.index || o.Height != want.height || o.View != 0 ||
			!strings.Contains(o.Reason, "would fail") || string(o.Message.Value) != string(want.value) {
			t.Errorf("offence %d: %+v", i, o)
		}
		if got := counterValue(t, n, "guild_consensus_invalid_proposals_total", want.name); got != 1 {
			t.Errorf("guild_consensus_invalid_proposals_total{validator=%q} = %v, want 1", want.name, got)
		}
	}

	// GET /v1/offences serves the signed proposals, which anyone can verify.
	rec := httptest.NewRecorder()
	n.apiHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/offences", nil))
	var resp api.OffencesResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Offences) != 2 {
		t.Fatalf("GET /v1/offences: %s (%v)", rec.Body.String(), err)
	}
	o := resp.Offences[0]
	raw, err := hex.DecodeString(o.Message)
	if err != nil {
		t.Fatal(err)
	}
	m, err := consensus.DecodeMessage(raw, MaxBlockBytes+64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if err := consensus.VerifyMessage(n.chainID, n.validatorsAt(1), m); err != nil || m.From != 1 || m.Type != consensus.MsgPrePrepare ||
		o.Validator != "b" || o.Height != 1 || o.Digest != consensus.DigestOf(bad).String() || o.Reason == "" {
		t.Fatalf("served offence %+v: %v", o, err)
	}
}

// dryRunRoot is the state root after block height with txs on n's tip, computed without
// committing it.
func dryRunRoot(t *testing.T, n *Node, height uint64, txs [][]byte) (root, receipts state.Hash) {
	t.Helper()
	st, err := n.st.ExecuteBlock(state.BlockInfo{Height: height, TimeMs: n.lastTime + 1}, txs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st.Result.Root, st.Result.ReceiptsRoot
}

// A certified block is final: one holding failing transactions (decided by a quorum this node is
// not part of) is executed, not refused, and no offence is recorded for it. Its transactions
// whose nonce was ahead stay pending and pass in the next block.
func TestCertifiedBlockWithFailingTxsExecuted(t *testing.T) {
	c, n := validatorOfSyncChain(t)
	descending := c.payments(t, 4, 3, 2, 1, 0)
	pool(t, n, descending)
	c.decide(t, n, nextValue(t, n, 1, descending))
	if len(n.badProposals.all()) != 0 {
		t.Fatal("a certified block was recorded as an offence")
	}
	if acct, _ := n.st.Account(state.AddressFromPubKey(c.payer.Public().(ed25519.PublicKey))); acct.Nonce != 1 {
		t.Fatalf("payer nonce %d after the block, want 1", acct.Nonce)
	}
	if st := txStatus(t, n, descending[4]); st.Status != api.TxCommitted {
		t.Fatalf("nonce 0: %+v", st)
	}
	// The event stream says which failed in the block, and why.
	failed := 0
	if _, err := n.blockEvents(1, 0, true, func(ev *streamEvent) error {
		if tx, ok := ev.data.(*api.TxEventJSON); ok && tx.Status == api.EventTxFailed && strings.Contains(tx.Error, "ahead") {
			failed++
		}
		return nil
	}); err != nil || failed != 4 {
		t.Fatalf("block 1's events: %d failed, want 4 (%v)", failed, err)
	}
	for _, raw := range descending[:4] {
		if st := txStatus(t, n, raw); st.Status != api.TxPending || !n.pool.Has(state.HashTx(raw)) {
			t.Fatalf("a transaction whose nonce was ahead: %+v, want pending", st)
		}
	}
	c.decide(t, n, nextValue(t, n, 2, n.pool.Reap(100, MaxBlockBytes, n.nonceOf)))
	for _, raw := range descending {
		if st := txStatus(t, n, raw); st.Status != api.TxCommitted {
			t.Fatalf("after block 2: %+v", st)
		}
	}
}

// A leader builds its block from the mempool and leaves out what would fail: a transaction that
// can never pass leaves the mempool and reads rejected, with the reason; one that waits on an
// earlier nonce stays pending. What it proposes is what it commits, executed once.
func TestLeaderLeavesOutFailingTxs(t *testing.T) {
	home, key := soloHome(t, "memdb")
	n, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.closeStores)
	var to state.Address
	to[0] = 9
	spend := transfer(t, n.chainID, key, 0, to, 900)
	overdraw := transfer(t, n.chainID, key, 1, to, 500) // admitted on 1000, fails after spend
	behind := transfer(t, n.chainID, key, 2, to, 1)     // waits for a nonce 1 that passes
	pool(t, n, [][]byte{spend, overdraw, behind})

	if err := n.startCore(nil); err != nil {
		t.Fatal(err)
	}
	rd := n.core.Ready()
	if err := n.handleReady(rd); err != nil {
		t.Fatal(err)
	}
	n.advanceCore()
	if rd.Propose == nil {
		t.Fatal("the solo validator was not asked to propose")
	}
	if err := n.maybePropose(rd.Propose, time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	if len(n.executed.list) != 1 {
		t.Fatalf("%d executed candidates kept, want the proposal's", len(n.executed.list))
	}
	drain(t, n)
	value, _, err := n.blocks.Block(1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DecodeBlock(value)
	if len(b.Txs) != 1 || string(b.Txs[0]) != string(spend) {
		t.Fatalf("proposed block holds %d transactions, want only the one that passes", len(b.Txs))
	}
	if len(n.executed.list) != 0 {
		t.Fatal("the committed block's execution was not used")
	}
	if st := txStatus(t, n, spend); st.Status != api.TxCommitted || st.Error != "" {
		t.Fatalf("spend: %+v", st)
	}
	if st := txStatus(t, n, overdraw); st.Status != api.TxRejected || !strings.Contains(st.Error, state.ErrNoFunds.Error()) {
		t.Fatalf("overdraw: %+v, want rejected for insufficient funds", st)
	}
	if st := txStatus(t, n, behind); st.Status != api.TxPending {
		t.Fatalf("nonce 2 behind the rejected nonce 1: %+v, want pending", st)
	}
	if got := counterValue(t, n, "guild_txs_left_out_total", ""); got != 2 {
		t.Fatalf("guild_txs_left_out_total = %v, want 2", got)
	}
}

// A proposal that is not decided takes nothing out of the mempool: the view changes, another
// block is decided, and the proposal's transactions are still pending.
func TestUndecidedProposalLeavesTxsPending(t *testing.T) {
	c, n := validatorOfSyncChain(t)
	txs := c.payments(t, 0, 1, 2)
	pool(t, n, txs)
	if err := n.stepMessage(prePrepare(n.chainID, c.valKeys[1], 1, 1, 0, nextValue(t, n, 1, txs))); err != nil {
		t.Fatalf("a correct proposal: %v", err)
	}
	if signed := drain(t, n); len(signed) != 1 || signed[0].Type != consensus.MsgPrepare {
		t.Fatalf("signed %+v for a correct proposal, want its prepare", signed)
	}
	for n.core.Status().View == 0 {
		n.core.Tick()
	}
	drain(t, n)
	for _, raw := range txs {
		if st := txStatus(t, n, raw); st.Status != api.TxPending {
			t.Fatalf("after the view change: %+v", st)
		}
	}
	c.decide(t, n, nextValue(t, n, 2, nil))
	if n.pool.Size() != len(txs) {
		t.Fatalf("mempool holds %d after another block was decided, want %d", n.pool.Size(), len(txs))
	}
	for _, raw := range txs {
		if st := txStatus(t, n, raw); st.Status != api.TxPending {
			t.Fatalf("after an empty block: %+v", st)
		}
	}
}

// The offence log keeps one offence per leader and slot, and the newest within its count and
// byte bounds.
func TestOffenceLogBounds(t *testing.T) {
	l := newOffenceLog(3, 100)
	off := func(h uint64, from uint32, size int) Offence {
		return Offence{Height: h, ValidatorIndex: from, Message: consensus.Message{Value: make([]byte, size)}}
	}
	if !l.add(off(1, 1, 10)) || l.add(off(1, 1, 10)) || !l.add(off(1, 2, 10)) {
		t.Fatal("one offence per leader and slot")
	}
	for h := uint64(2); h <= 4; h++ {
		l.add(off(h, 1, 10))
	}
	if got := l.all(); len(got) != 3 || got[0].Height != 2 || l.caught(1, 0, 1) || !l.caught(4, 0, 1) {
		t.Fatalf("after 5 offences in a log of 3: %d kept, oldest at height %d", len(got), got[0].Height)
	}
	l.add(off(5, 1, 90))
	if got := l.all(); len(got) != 2 || got[0].Height != 4 || l.bytes != 100 {
		t.Fatalf("byte bound: %d kept (%d bytes)", len(got), l.bytes)
	}
	l.add(off(6, 1, 500)) // larger than the bound alone: kept, alone
	if got := l.all(); len(got) != 1 || got[0].Height != 6 {
		t.Fatalf("an offence larger than the byte bound: %d kept", len(got))
	}
}

// A new view's leader that proposes, inside its NEW-VIEW, a block a correct leader could not have
// made is refused and put on record like a view-0 leader, by its signed pre-prepare.
func TestBadOrderNewViewRefusedAndRecorded(t *testing.T) {
	c, n := validatorOfSyncChain(t)
	for n.core.Status().View == 0 {
		n.core.Tick()
	}
	drain(t, n)
	leader := n.core.Status().Leader
	if leader == 0 {
		t.Fatal("the node under test leads view 1")
	}
	var vcs []consensus.Message
	for i := uint32(1); i < 4; i++ {
		vc := consensus.Message{Type: consensus.MsgViewChange, Height: 1, View: 1, From: i}
		consensus.Sign(n.chainID, c.valKeys[i], &vc)
		vcs = append(vcs, vc)
	}
	bad := nextValue(t, n, leader, c.payments(t, 1, 0))
	pp := prePrepare(n.chainID, c.valKeys[leader], leader, 1, 1, bad)
	nv := &consensus.Message{Type: consensus.MsgNewView, Height: 1, View: 1, From: leader, Digest: pp.Digest,
		ViewChanges: vcs, Proposal: pp}
	consensus.Sign(n.chainID, c.valKeys[leader], nv)
	if err := n.stepMessage(nv); !errors.Is(err, ErrTxWouldFail) {
		t.Fatalf("new view with descending nonces: %v, want ErrTxWouldFail", err)
	}
	list := n.badProposals.all()
	if len(list) != 1 || list[0].ValidatorIndex != leader || list[0].View != 1 || list[0].Message.Type != consensus.MsgPrePrepare ||
		consensus.VerifyMessage(n.chainID, n.validatorsAt(1), &list[0].Message) != nil {
		t.Fatalf("offences %d, want the new view's signed pre-prepare", len(list))
	}
}

// A block's header carries the receipts root of the block before it, and a proposal whose root
// is not this node's is refused like one with a wrong state root (issue 12).
func TestProposalWithWrongReceiptsRootRefused(t *testing.T) {
	c, n := validatorOfSyncChain(t)
	txs := c.payments(t, 0, 1)
	pool(t, n, txs)
	c.decide(t, n, nextValue(t, n, 1, txs))
	if n.st.ReceiptsRoot() == (state.Hash{}) {
		t.Fatal("no receipts root after a block with transactions")
	}
	h := n.blocks.Height() + 1
	turn := n.leadersAt(h)
	bad := blockValue(t, n.chainID, h, n.lastHash, n.st.Root(), state.Hash{1}, n.lastTime+1, 2, turn.leader, nil)
	if err := n.CheckProposal(h, bad); !errors.Is(err, ErrBadBlock) || !strings.Contains(err.Error(), "receipts root") {
		t.Fatalf("proposal with a wrong receipts root: %v", err)
	}
	if err := n.CheckProposal(h, nextValue(t, n, 2, nil)); err != nil {
		t.Fatalf("proposal with the right receipts root: %v", err)
	}
}

// A fresh proposal must name the validator that proposed it: a leader of a later view that
// names the validator whose turn it was would hide that turn's miss from the leader schedule.
// The same block re-proposed from a prepared certificate (CheckProposal) keeps its first
// proposer's name and passes.
func TestProposalNamingAnotherProposerRefused(t *testing.T) {
	_, n := validatorOfSyncChain(t)
	h := n.blocks.Height() + 1
	v := nextValue(t, n, 2, nil)
	for _, step := range []struct {
		proposer uint32
		ok       bool
	}{{3, false}, {2, true}, {3, false}} { // the last one finds the block executed already
		err := n.CheckProposalBy(h, step.proposer, v)
		if step.ok && err != nil {
			t.Fatalf("proposal by the validator it names: %v", err)
		}
		if !step.ok && (!errors.Is(err, ErrBadBlock) || !strings.Contains(err.Error(), "proposer")) {
			t.Fatalf("proposal by validator %d naming validator 2: %v, want a bad block naming the proposer", step.proposer, err)
		}
	}
	if err := n.CheckProposal(h, v); err != nil {
		t.Fatalf("the same block re-proposed: %v", err)
	}
}
