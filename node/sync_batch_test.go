package node

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// growSpoiled commits blocks 1..5 on src, two transfers each; spoil, if set, changes block 3
// (its transactions or header) before it is certified.
func (c *syncChain) growSpoiled(t *testing.T, n *Node, spoil func(txs *[][]byte, h *Header, nonce uint64)) {
	t.Helper()
	c.growN(t, n, 5, spoil)
}

// growN is growSpoiled for blocks 1..blocks.
func (c *syncChain) growN(t *testing.T, n *Node, blocks uint64, spoil func(txs *[][]byte, h *Header, nonce uint64)) {
	t.Helper()
	nonce := uint64(0)
	for h := uint64(1); h <= blocks; h++ {
		var txs [][]byte
		for range 2 {
			txs = append(txs, transfer(t, c.gen.ChainID, c.payer, nonce, state.Address{byte(nonce + 1)}, 1))
			nonce++
		}
		hd := ledBy(n, Header{ChainID: c.gen.ChainID, Height: h, Time: n.lastTime + 10, PrevHash: n.lastHash,
			StateRoot: n.st.Root(), ReceiptsRoot: n.st.ReceiptsRoot()})
		if h == 3 && spoil != nil {
			spoil(&txs, &hd, nonce)
		}
		hd.TxsHash = TxsHash(txs)
		value, err := (&Block{Header: hd, Txs: txs}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		cert := certify(c.gen.ChainID, c.valKeys[:3], h, consensus.DigestOf(value))
		// commit executes without judging the header: a source that serves what a quorum
		// certified, whatever it holds.
		if err := n.commit(consensus.Committed{Height: h, Value: value, Certificate: cert}); err != nil {
			t.Fatal(err)
		}
	}
}

// syncOnce runs one block sync round of a fresh pebble node from src, and returns the node.
// chunkTxs, if positive, is the syncer's chunk size (every chunk, the first too).
func (c *syncChain) syncOnce(t *testing.T, home string, src *Node, chunkTxs ...int) (*Node, error) {
	t.Helper()
	dst, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	var applyErr error
	s := dst.newSyncer(fakeSyncNet{"src": {height: 5, fetch: func(from uint64, max int) ([]p2p.SyncedBlock, error) {
		return src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
	}}})
	for _, n := range chunkTxs {
		s.chunkTxs, s.firstChunkTxs = n, n
	}
	s.apply = func(_ context.Context, bs []syncedBlock) error {
		_, local, fatal := dst.applySynced(bs)
		applyErr = errors.Join(applyErr, local, fatal)
		return errors.Join(local, fatal)
	}
	s.round(context.Background())
	return dst, applyErr
}

// chunkings are the ways the batch tests cut a batch for the loop: the default (the five small
// blocks in one chunk) and a chunk per block, so that the loop applies blocks 1 and 2 while
// block 3 is verified.
var chunkings = []struct {
	name string
	txs  []int
}{{"one chunk", nil}, {"a chunk a block", []int{2}}}

func pebbleSyncHome(t *testing.T, c *syncChain) string {
	t.Helper()
	home := c.home(t)
	editConfig(t, home, func(cfg *Config) { cfg.Storage.Backend = "pebbledb" })
	return home
}

// Block sync verifies every signature however it is batched: in a batch of five certified
// blocks, the third holds a transfer whose signature is spoiled (and which, were it accepted,
// would take the nonce of the valid transfer after it). Pre-verification decodes it and keeps it
// for execution, but must not vouch for it: it is rejected as a bad signature, the transfer with
// the same nonce applies, and the node ends on the source's state.
func TestSyncBatchRejectsBadSignatureInThirdBlock(t *testing.T) {
	for _, ck := range chunkings {
		t.Run(ck.name, func(t *testing.T) { testSyncBatchRejectsBadSignature(t, ck.txs) })
	}
}

func testSyncBatchRejectsBadSignature(t *testing.T, chunkTxs []int) {
	c := newSyncChain(t)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.closeStores()
	thief := state.Address{0xee}
	c.growSpoiled(t, src, func(txs *[][]byte, _ *Header, nonce uint64) {
		tx, err := state.DecodeTx(transfer(t, c.gen.ChainID, c.payer, nonce, thief, 1000))
		if err != nil {
			t.Fatal(err)
		}
		tx.Sigs[0].Sig[0] ^= 1
		raw, err := tx.Encode()
		if err != nil {
			t.Fatal(err)
		}
		*txs = append(*txs, raw, transfer(t, c.gen.ChainID, c.payer, nonce, state.Address{0xdd}, 1))
	})
	dst, err := c.syncOnce(t, pebbleSyncHome(t, c), src, chunkTxs...)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.closeStores()
	if dst.blocks.Height() != 5 || dst.st.Root() != src.st.Root() {
		t.Fatalf("height %d, root %s; want 5 and the source's %s", dst.blocks.Height(), dst.st.Root(), src.st.Root())
	}
	if a, _ := dst.st.Account(thief); a.Balance != 0 {
		t.Fatalf("the spoiled transfer applied: recipient holds %d", a.Balance)
	}
	res, err := dst.blocks.Results(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || !strings.Contains(res[2].Error, "signature") || res[3].Error != "" {
		t.Fatalf("block 3's results %+v: want the third rejected for its signature and the fourth applied", res)
	}
}

// A certified block whose header's state root is not the one this node computed stops block
// sync at that block, the third of the batch: the two before it are stored and applied, and
// nothing of the third or later reaches either store, as a restart shows.
func TestSyncBatchRefusesBadRootInThirdBlock(t *testing.T) {
	for _, ck := range chunkings {
		t.Run(ck.name, func(t *testing.T) { testSyncBatchRefusesBadRoot(t, ck.txs) })
	}
}

func testSyncBatchRefusesBadRoot(t *testing.T, chunkTxs []int) {
	c := newSyncChain(t)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.closeStores()
	c.growSpoiled(t, src, func(_ *[][]byte, h *Header, _ uint64) { h.StateRoot[0] ^= 1 })
	home := pebbleSyncHome(t, c)
	dst, err := c.syncOnce(t, home, src, chunkTxs...)
	if !errors.Is(err, errSyncLocal) {
		t.Fatalf("sync ended with %v; want errSyncLocal", err)
	}
	dst.closeStores()
	again, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.closeStores()
	if again.blocks.Height() != 2 || again.st.Height() != 2 {
		t.Fatalf("after a restart: blocks at %d, state at %d; want both at 2", again.blocks.Height(), again.st.Height())
	}
	for h := uint64(3); h <= 5; h++ {
		if v, _, err := again.blocks.Block(h); err == nil && v != nil {
			t.Fatalf("block %d was stored", h)
		}
	}
}

// Block sync pipelines (issue #10): the loop starts on the first chunks of a fetched batch while
// later ones are still being verified, and never gets a block whose transactions' signatures
// are not all verified. Twenty blocks, a chunk each: the queue to the loop is bounded, so while
// the loop's first turn runs, at most 2 + 2×syncQueuedChunks of them can be verified, and block
// 20 cannot be. (Verified whole before the loop began, block 20 was verified by then.)
func TestSyncPipelineAppliesWhileLaterChunksVerify(t *testing.T) {
	const blocks = 20
	c := newSyncChain(t)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.closeStores()
	c.growN(t, src, blocks, nil)
	last, _, err := src.blocks.Block(blocks)
	if err != nil {
		t.Fatal(err)
	}
	lastBlock, err := DecodeBlock(last)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.closeStores()
	s := dst.newSyncer(fakeSyncNet{"src": {height: blocks, fetch: func(from uint64, max int) ([]p2p.SyncedBlock, error) {
		return src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
	}}})
	s.chunkTxs, s.firstChunkTxs = 2, 2
	calls, lastVerifiedFirst := 0, false
	s.apply = func(_ context.Context, bs []syncedBlock) error {
		calls++
		for _, b := range bs {
			for _, raw := range b.block.Txs {
				if !dst.sigs.Verified(state.HashTx(raw)) {
					t.Errorf("block %d reached the loop with a transaction not verified", b.height)
				}
			}
		}
		if calls == 1 {
			lastVerifiedFirst = dst.sigs.Verified(state.HashTx(lastBlock.Txs[0]))
		}
		_, local, fatal := dst.applySynced(bs)
		return errors.Join(local, fatal)
	}
	s.round(context.Background())
	if dst.blocks.Height() != blocks || dst.st.Root() != src.st.Root() {
		t.Fatalf("height %d, root %s; want %d and the source's %s", dst.blocks.Height(), dst.st.Root(), blocks, src.st.Root())
	}
	if lastVerifiedFirst {
		t.Fatalf("block %d was verified before the loop applied anything: the batch was not pipelined", blocks)
	}
}
