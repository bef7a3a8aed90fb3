package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// govChain is a syncChain whose one member is the payer, so its proposals pass at once: block 1
// adds validator "e" (the key of a node the test makes) from height effective, block 2 sets
// max_block_txs to 2. Blocks before effective are certified by a, b, c (3 of 4); from effective on
// by a, b, c and e (4 of 5), which the old set cannot verify.
type govChain struct {
	*syncChain
	effective uint64
	eHome     string
	eKey      ed25519.PrivateKey
	nonce     uint64
	// missed: the blocks at these heights are built by the leader of view 1, not the scheduled one.
	missed []uint64
}

func newGovChain(t *testing.T, effective uint64) *govChain {
	t.Helper()
	c := &govChain{syncChain: newSyncChain(t), effective: effective}
	c.gen.Members = []state.Member{{Name: "payer", Controller: state.AddressFromPubKey(c.payer.Public().(ed25519.PublicKey))}}
	if err := c.gen.Validate(); err != nil {
		t.Fatal(err)
	}
	c.eHome = c.home(t)
	var err error
	if c.eKey, err = LoadKeyFile(filepath.Join(c.eHome, ValidatorKeyFile)); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *govChain) tx(t *testing.T, body state.TxBody) []byte {
	t.Helper()
	body.ChainID, body.From, body.Nonce = c.gen.ChainID, state.AddressFromPubKey(c.payer.Public().(ed25519.PublicKey)), c.nonce
	c.nonce++
	tx, err := state.SignTx(body, c.payer)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// commitNext commits block h = n's height + 1 with txs on n, certified as the chain's rule says.
func (c *govChain) commitNext(t *testing.T, n *Node, txs [][]byte) {
	t.Helper()
	h := n.blocks.Height() + 1
	if txs == nil {
		txs = [][]byte{}
	}
	b := Block{Header: ledBy(n, Header{ChainID: c.gen.ChainID, Height: h, Time: n.lastTime + 10, PrevHash: n.lastHash,
		StateRoot: n.st.Root(), TxsHash: TxsHash(txs), ReceiptsRoot: n.st.ReceiptsRoot()}), Txs: txs}
	if slices.Contains(c.missed, h) {
		b.Header.Proposer = n.validatorsAt(h).LeaderOf(h, 1, n.leadersAt(h).skipped)
	}
	value, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d := consensus.DigestOf(value)
	cert := consensus.Certificate{Height: h, Digest: d}
	signers := map[uint32]ed25519.PrivateKey{0: c.valKeys[0], 1: c.valKeys[1], 2: c.valKeys[2]}
	if h >= c.effective {
		signers[4] = c.eKey // "e" sorts after a..d
	}
	for _, i := range []uint32{0, 1, 2, 3, 4} {
		k, ok := signers[i]
		if !ok {
			continue
		}
		m := consensus.Message{Type: consensus.MsgCommit, Height: h, From: i, Digest: d}
		cert.Votes = append(cert.Votes, consensus.Vote{Validator: i, Sig: ed25519.Sign(k, consensus.SignBytes(c.gen.ChainID, &m))})
	}
	if err := n.commit(consensus.Committed{Height: h, Value: value, Certificate: cert}); err != nil {
		t.Fatalf("block %d: %v", h, err)
	}
}

func (c *govChain) grow(t *testing.T, n *Node, blocks int) {
	t.Helper()
	ePub := c.eKey.Public().(ed25519.PublicKey)
	for range blocks {
		var txs [][]byte
		switch n.blocks.Height() + 1 {
		case 1:
			txs = append(txs, c.tx(t, state.TxBody{GovPropose: &state.GovPropose{ID: "add-e",
				SetValidator: &state.Validator{Name: "e", PubKey: ePub, Power: 1}, EffectiveHeight: c.effective}}))
		case 2:
			txs = append(txs, c.tx(t, state.TxBody{GovPropose: &state.GovPropose{ID: "txs-2",
				SetParam: &state.Param{Name: state.ParamMaxBlockTxs, Value: 2}}}))
		}
		c.commitNext(t, n, txs)
	}
}

// A validator change passed in a block takes effect at its height: the core of a node running
// the old set goes stale exactly when the next height is the change's first, and is rebuilt for
// five validators; a parameter passed in a block binds the next one (CheckProposal).
func TestCoreFollowsTheValidatorSchedule(t *testing.T) {
	const effective = 6
	c := newGovChain(t, effective)
	c.missed = []uint64{4, 5}
	n, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.closeStores()
	if err := n.startCore(nil); err != nil {
		t.Fatal(err)
	}
	for n.blocks.Height() < effective-1 {
		c.grow(t, n, 1)
		h := n.blocks.Height()
		if got, want := n.coreStale, h == effective-1; got != want {
			t.Fatalf("after block %d: core stale %v, want %v", h, got, want)
		}
		if h == 1 {
			if got := len(n.validatorsAt(effective).Validators); got != 5 {
				t.Fatalf("after the passing block, %d validators scheduled at %d, want 5", got, effective)
			}
			if got := len(n.validatorsAt(effective - 1).Validators); got != 4 {
				t.Fatalf("%d validators at %d, want the 4 of genesis", got, effective-1)
			}
		}
		if n.coreStale {
			if err := n.startCore(nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := len(n.coreEpoch.Set.Validators); got != 5 {
		t.Fatalf("the core of height %d has %d validators, want 5", effective, got)
	}
	// Validators 0 and 1 missed their turns at 4 and 5 in the old set; its indexes mean nothing in
	// the new one, so its first height starts with an empty skip table.
	if turn := n.leadersAt(effective); len(turn.skips) != 0 || turn.leader != uint32(effective%5) {
		t.Fatalf("first height of the new set: skips %+v, leader %d; want none, round-robin %d", turn.skips, turn.leader, effective%5)
	}
	if n.self != -1 {
		t.Fatalf("an observer's node has index %d", n.self)
	}

	// max_block_txs = 2 since block 2: a block of 3 is refused, one of 2 accepted.
	if n.params.maxBlockTxs != 2 {
		t.Fatalf("max block txs %d, want 2", n.params.maxBlockTxs)
	}
	block := func(k int) []byte {
		var txs [][]byte
		for i := range k {
			txs = append(txs, transfer(t, c.gen.ChainID, c.payer, c.nonce+uint64(i), state.Address{9}, 1))
		}
		b := Block{Header: ledBy(n, Header{ChainID: c.gen.ChainID, Height: n.blocks.Height() + 1, Time: n.lastTime + 10,
			PrevHash: n.lastHash, StateRoot: n.st.Root(), TxsHash: TxsHash(txs), ReceiptsRoot: n.st.ReceiptsRoot()}), Txs: txs}
		v, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := n.CheckProposal(n.blocks.Height()+1, block(3)); !errors.Is(err, ErrBadBlock) {
		t.Fatalf("a block of 3 transactions: %v, want ErrBadBlock", err)
	}
	if err := n.CheckProposal(n.blocks.Height()+1, block(2)); err != nil {
		t.Fatalf("a block of 2 transactions: %v", err)
	}
}

// A node syncing a chain across a validator change fetches batches that reach past the change
// before it has applied the block that scheduled it: the blocks it cannot verify yet are not the
// peer's fault. It applies the prefix, fetches the rest, and — its validator key being the one
// added — ends up a validator of the new set.
func TestSyncAcrossValidatorChange(t *testing.T) {
	const effective, blocks = 6, 40
	c := newGovChain(t, effective)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.closeStores()
	c.grow(t, src, blocks)

	dst, err := New(c.eHome, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.closeStores()
	if dst.self != -1 {
		t.Fatalf("before sync, the joining node has index %d", dst.self)
	}
	s := dst.newSyncer(fakeSyncNet{"honest": {height: blocks, fetch: func(from uint64, max int) ([]p2p.SyncedBlock, error) {
		return src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
	}}})
	s.apply = func(_ context.Context, bs []syncedBlock) error {
		_, local, fatal := dst.applySynced(bs)
		return errors.Join(local, fatal)
	}
	s.round(context.Background())
	if got := dst.blocks.Height(); got != blocks {
		t.Fatalf("synced to %d, want %d", got, blocks)
	}
	if len(s.dropped) != 0 {
		t.Fatalf("peers dropped: %v", s.dropped)
	}
	if dst.st.Root() != src.st.Root() || dst.lastHash != src.lastHash {
		t.Fatal("state or tip differs from the source's")
	}
	if err := dst.startCore(nil); err != nil {
		t.Fatal(err)
	}
	if dst.self != 4 || len(dst.coreEpoch.Set.Validators) != 5 {
		t.Fatalf("after sync: index %d in a set of %d, want 4 of 5", dst.self, len(dst.coreEpoch.Set.Validators))
	}
}

// A consensus message from a validator this node does not know yet is rejected (its sender is
// penalised) only at heights whose set is final here; further ahead the set may still change in
// blocks this node has not applied, so it is ignored.
func TestConsensusGossipBeyondTheKnownScheduleIgnored(t *testing.T) {
	c := newGovChain(t, 6)
	n, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.closeStores()
	c.grow(t, n, 3)
	msg := func(h uint64) []byte {
		m := consensus.Message{Type: consensus.MsgPrepare, Height: h, From: 5, Digest: consensus.Digest{1}}
		m.Sig = ed25519.Sign(c.eKey, consensus.SignBytes(c.gen.ChainID, &m))
		b, err := consensus.EncodeMessage(&m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	final := n.blocks.Height() + state.MinValidatorDelay
	if v, _ := n.validateConsensus("peer", msg(final)); v != p2p.Reject {
		t.Errorf("unknown validator at height %d (set final): verdict %v, want Reject", final, v)
	}
	if v, _ := n.validateConsensus("peer", msg(final+1)); v != p2p.Ignore {
		t.Errorf("unknown validator at height %d (set not final): verdict %v, want Ignore", final+1, v)
	}
}
