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
	nonce := uint64(0)
	for h := uint64(1); h <= 5; h++ {
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
func (c *syncChain) syncOnce(t *testing.T, home string, src *Node) (*Node, error) {
	t.Helper()
	dst, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	var applyErr error
	s := dst.newSyncer(fakeSyncNet{"src": {height: 5, fetch: func(from uint64, max int) ([]p2p.SyncedBlock, error) {
		return src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
	}}})
	s.apply = func(_ context.Context, bs []syncedBlock) error {
		_, local, fatal := dst.applySynced(bs)
		applyErr = errors.Join(applyErr, local, fatal)
		return errors.Join(local, fatal)
	}
	s.round(context.Background())
	return dst, applyErr
}

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
	dst, err := c.syncOnce(t, pebbleSyncHome(t, c), src)
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
	c := newSyncChain(t)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.closeStores()
	c.growSpoiled(t, src, func(_ *[][]byte, h *Header, _ uint64) { h.StateRoot[0] ^= 1 })
	home := pebbleSyncHome(t, c)
	dst, err := c.syncOnce(t, home, src)
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
	if v, _, err := again.blocks.Block(3); err == nil && v != nil {
		t.Fatal("block 3 was stored")
	}
}
