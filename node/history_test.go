package node

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// withBlockDB opens the block store of a stopped node at home.
func withBlockDB(t *testing.T, home string, fn func(kv.Store)) {
	t.Helper()
	db, err := kv.Open(kv.PebbleDB, filepath.Join(home, DataDir), "blocks")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fn(db)
}

// The indexes are written with each block, live and across a restart, name the parties an
// operation reaches through state (an escrow's beneficiary on release), and `guild node reindex`
// or the rebuild at start of a store without them gives the same bytes.
func TestIndexesLiveRestartAndReindex(t *testing.T) {
	home, key := memberHome(t, "pebbledb", nil)
	n, c, stop := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	me := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	var other state.Address
	other[0] = 77
	h := submitAll(t, ctx, c, n.chainID, key, 0,
		state.TxBody{Transfer: &state.Transfer{To: other, Amount: 10}},
		state.TxBody{EscrowCreate: &state.EscrowCreate{ID: "deal", Beneficiary: other, Amount: 20, Arbiter: &me, Deadline: 1 << 40}},
		state.TxBody{EscrowRelease: &state.EscrowRelease{ID: "deal"}},
	)
	release, err := c.Tx(ctx, h[2])
	if err != nil {
		t.Fatal(err)
	}
	list, err := n.blocks.AccountTxs(other, n.executedHeight(), TxPos{}, 10)
	if err != nil || len(list) != 3 || list[0] != (TxPos{release.Height, uint32(release.Index)}) {
		t.Fatalf("history of the beneficiary: %v %v, want the release at %d/%d first, 3 in all", list, err, release.Height, release.Index)
	}
	stop()

	n, c, stop = runNode(t, home)
	more := submitAll(t, ctx, c, n.chainID, key, 3, state.TxBody{Transfer: &state.Transfer{To: other, Amount: 1}})
	ts, _ := c.Tx(ctx, more[0])
	list, err = n.blocks.AccountTxs(other, n.executedHeight(), TxPos{}, 10)
	if err != nil || len(list) != 4 || list[0] != (TxPos{ts.Height, uint32(ts.Index)}) {
		t.Fatalf("history after a restart: %v %v", list, err)
	}
	stop()

	var live map[string]string
	withBlockDB(t, home, func(db kv.Store) { live = dumpIndexes(t, db) })
	var reports []uint64
	res, err := Reindex(home, func(h, of uint64, entries int) { reports = append(reports, h) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries == 0 || len(reports) == 0 || reports[len(reports)-1] != res.Height {
		t.Fatalf("reindex: %+v, progress %v", res, reports)
	}
	withBlockDB(t, home, func(db kv.Store) {
		sameIndexes(t, "reindex", dumpIndexes(t, db), live)
		// Now make it a store from before the indexes.
		b := db.NewBatch()
		defer b.Close()
		b.Delete(keyIndexMark)
		it, _ := db.Iterator(accountPrefix, prefixEnd(accountPrefix))
		for ; it.Valid(); it.Next() {
			b.Delete(slices.Clone(it.Key()))
		}
		it.Close()
		if err := b.Write(); err != nil {
			t.Fatal(err)
		}
	})
	n2, err := New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	n2.closeStores()
	withBlockDB(t, home, func(db kv.Store) { sameIndexes(t, "rebuilt at start", dumpIndexes(t, db), live) })
}
