package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node/api"
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
	res, err := Reindex(home, nil, func(h, of uint64, entries int) { reports = append(reports, h) })
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

// GET /v1/accounts/{address}/txs pages an account's transactions newest first, and paging on
// while new blocks (with transactions of the account) arrive neither repeats nor skips one.
// GET /v1/blocks lists headers both ways; GET /v1/txs/{hash} says what the block says of it.
func TestHistoryAPI(t *testing.T) {
	home, key := memberHome(t, "memdb", nil)
	n, c, _ := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	me := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	var other state.Address
	other[0] = 78
	bodies := []state.TxBody{
		{EscrowCreate: &state.EscrowCreate{ID: "deal", Beneficiary: other, Amount: 20, Arbiter: &me, Deadline: 1 << 40}},
		{EscrowRelease: &state.EscrowRelease{ID: "deal"}},
	}
	for range 8 {
		bodies = append(bodies, state.TxBody{Transfer: &state.Transfer{To: other, Amount: 1}})
	}
	hashes := submitAll(t, ctx, c, n.chainID, key, 0, bodies...)
	nonce := uint64(len(hashes))

	// Page by 3; after each page another transfer to the account goes into a block.
	var got []api.AccountTxJSON
	var first api.AccountTxsResponse
	cursor := ""
	for page := 0; ; page++ {
		resp, err := c.AccountTxs(ctx, other.String(), 3, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if page == 0 {
			first = resp
		}
		got = append(got, resp.Txs...)
		submitAll(t, ctx, c, n.chainID, key, nonce, state.TxBody{Transfer: &state.Transfer{To: other, Amount: 1}})
		nonce++
		if resp.NextCursor == "" {
			break
		}
		if len(resp.Txs) != 3 {
			t.Fatalf("page %d: %d transactions and a next cursor", page, len(resp.Txs))
		}
		cursor = resp.NextCursor
	}
	if len(got) != len(hashes) {
		t.Fatalf("paged %d transactions, want the %d before the first page", len(got), len(hashes))
	}
	for i, tx := range got {
		want := hashes[len(hashes)-1-i]
		if tx.Hash != want || tx.Status != api.EventTxCommitted || tx.Time == "" || !slices.Contains(tx.Accounts, other.String()) {
			t.Fatalf("entry %d: %+v, want %s touching %s", i, tx, want, other)
		}
		if i > 0 && (tx.Height > got[i-1].Height || tx.Height == got[i-1].Height && tx.Index >= got[i-1].Index) {
			t.Fatalf("entry %d (%d/%d) is not older than the one before", i, tx.Height, tx.Index)
		}
	}
	if first.Address != other.String() || first.Height == 0 {
		t.Fatalf("first page: %+v", first)
	}
	if release := got[len(got)-2]; release.Op != "escrow_release" || release.From != me.String() {
		t.Fatalf("the release, which names the beneficiary only through the escrow: %+v", release)
	}

	// A transaction's status says what its block says of it.
	ts, err := c.Tx(ctx, hashes[1])
	if err != nil {
		t.Fatal(err)
	}
	blk, err := c.Block(ctx, ts.Height)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Result != api.EventTxCommitted || ts.Time != blk.Header.Time || ts.Op != "escrow_release" || ts.From != me.String() ||
		!slices.Contains(ts.Accounts, other.String()) {
		t.Fatalf("tx status: %+v", ts)
	}

	// Headers ascending from 1 and descending from the top, each page following the last.
	asc, err := c.Blocks(ctx, 0, 4, false)
	if err != nil || len(asc.Blocks) != 4 || asc.NextFrom != 5 || asc.Blocks[0].Height != 1 {
		t.Fatalf("blocks from 1: %+v %v", asc, err)
	}
	more, err := c.Blocks(ctx, asc.NextFrom, 0, false)
	if err != nil || len(more.Blocks) == 0 || more.Blocks[0].Height != 5 {
		t.Fatalf("blocks from 5: %+v %v", more, err)
	}
	for _, bh := range append(asc.Blocks, more.Blocks...) {
		full, err := c.Block(ctx, bh.Height)
		if err != nil || bh.Hash != full.Hash || bh.Header.Time != full.Header.Time || bh.Txs != len(full.Txs) || bh.Header.Height != bh.Height {
			t.Fatalf("header of block %d: %+v, the block: %+v %v", bh.Height, bh, full.Header, err)
		}
	}
	desc, err := c.Blocks(ctx, 0, 3, true)
	if err != nil || len(desc.Blocks) != 3 || desc.Blocks[0].Height != desc.Height || desc.NextFrom != desc.Height-3 {
		t.Fatalf("newest blocks: %+v %v", desc, err)
	}
	if end, err := c.Blocks(ctx, 2, 5, true); err != nil || len(end.Blocks) != 2 || end.NextFrom != 0 {
		t.Fatalf("blocks down from 2: %+v %v", end, err)
	}

	// Bad limits, cursors and heights are refused.
	for _, path := range []string{
		"/v1/accounts/" + other.String() + "/txs?limit=0",
		"/v1/accounts/" + other.String() + "/txs?limit=501",
		"/v1/accounts/" + other.String() + "/txs?limit=ten",
		"/v1/accounts/" + other.String() + "/txs?cursor=yesterday",
		"/v1/accounts/" + other.String() + "/txs?cursor=000000000000000000000000",
		"/v1/accounts/nobody/txs",
		"/v1/blocks?limit=501",
		"/v1/blocks?from=0",
		"/v1/blocks?from=-1",
		"/v1/blocks?order=sideways",
	} {
		resp, err := http.Get(c.Base() + path)
		if err != nil {
			t.Fatal(err)
		}
		var e api.ErrorResponse
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || err != nil || e.Error == "" || e.Code != api.CodeBadRequest {
			t.Errorf("GET %s: %d %+v %v, want 400 %s", path, resp.StatusCode, e, err, api.CodeBadRequest)
		}
	}
}
