package node

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// indexChain is a block store on memdb whose blocks hold synthetic transactions: transaction i of
// block h touches account A, and account B when (h+i)%3 == 0. Block 5 replays block 2's first
// transaction, which execution rejects.
type indexChain struct {
	db   kv.Store
	bs   *BlockStore
	a, b state.Address
}

func newIndexChain(t *testing.T) *indexChain {
	t.Helper()
	db, err := kv.Open(kv.MemDB, "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	bs, err := OpenBlockStore(db)
	if err != nil {
		t.Fatal(err)
	}
	return &indexChain{db: db, bs: bs, a: state.Address{1}, b: state.Address{2}}
}

func (c *indexChain) txsOf(h uint64) [][]byte {
	if h == 5 {
		return [][]byte{[]byte("tx-2-0"), []byte("tx-5-1")}
	}
	n := int(h%4) + 1
	txs := make([][]byte, n)
	for i := range txs {
		txs[i] = fmt.Appendf(nil, "tx-%d-%d", h, i)
	}
	return txs
}

func (c *indexChain) touches(h uint64, txs [][]byte, _ []StoredResult) ([][]state.Address, error) {
	out := make([][]state.Address, len(txs))
	for i := range txs {
		out[i] = []state.Address{c.a}
		if (h+uint64(i))%3 == 0 {
			out[i] = append(out[i], c.b)
		}
	}
	return out, nil
}

// add stores and "executes" the next block.
func (c *indexChain) add(t *testing.T) {
	t.Helper()
	h := c.bs.Height() + 1
	txs := c.txsOf(h)
	value, err := (&Block{Header: Header{ChainID: "idx", Height: h, Time: int64(h)}, Txs: txs}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	cert := consensus.Certificate{Height: h, Digest: consensus.DigestOf(value)}
	if err := c.bs.SaveBlock(h, value, &cert); err != nil {
		t.Fatal(err)
	}
	results := make([]StoredResult, len(txs))
	for i, tx := range txs {
		results[i].Hash = state.HashTx(tx)
		if h == 5 && i == 0 {
			results[i].Error = "replayed"
		}
	}
	touched, _ := c.touches(h, txs, results)
	if err := c.bs.SaveResults(h, results, touched); err != nil {
		t.Fatal(err)
	}
}

// want lists the positions touching a up to height top, newest first.
func (c *indexChain) want(a state.Address, top uint64) []TxPos {
	var out []TxPos
	for h := top; h >= 1; h-- {
		touched, _ := c.touches(h, c.txsOf(h), nil)
		for i := len(touched) - 1; i >= 0; i-- {
			if slices.Contains(touched[i], a) {
				out = append(out, TxPos{Height: h, Index: uint32(i)})
			}
		}
	}
	return out
}

// dumpIndexes is every index key and value of db, and the mark.
func dumpIndexes(t *testing.T, db kv.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range [][]byte{txIndexPrefix, accountPrefix} {
		it, err := db.Iterator(p, prefixEnd(p))
		if err != nil {
			t.Fatal(err)
		}
		for ; it.Valid(); it.Next() {
			out[string(it.Key())] = string(it.Value())
		}
		it.Close()
	}
	mark, _ := db.Get(keyIndexMark)
	out[string(keyIndexMark)] = string(mark)
	return out
}

func sameIndexes(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d index entries, want %d", what, len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: entry %x = %x (present %v), want %x", what, k, g, ok, v)
		}
	}
}

// Paging an account's history while blocks keep arriving gives every transaction up to the
// height of the first page once, newest first: a cursor is a position, not an offset.
func TestAccountTxsPagesWithoutGapOrRepeat(t *testing.T) {
	c := newIndexChain(t)
	for range 20 {
		c.add(t)
	}
	top := c.bs.Height()
	for _, acct := range []state.Address{c.a, c.b} {
		var got []TxPos
		var after TxPos
		for page := 0; ; page++ {
			if page > 100 {
				t.Fatal("paging does not end")
			}
			list, err := c.bs.AccountTxs(acct, c.bs.Height(), after, 4)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, list...)
			c.add(t) // a new block between every two pages
			if len(list) < 4 {
				break
			}
			after = list[len(list)-1]
		}
		if want := c.want(acct, top); !slices.Equal(got, want) {
			t.Fatalf("account %s: paged %v\nwant %v", acct, got, want)
		}
		top = c.bs.Height()
	}
	// maxHeight hides blocks being written; a zero address or limit gives nothing.
	if list, _ := c.bs.AccountTxs(c.a, 3, TxPos{}, 100); !slices.Equal(list, c.want(c.a, 3)) {
		t.Fatalf("up to height 3: %v, want %v", list, c.want(c.a, 3))
	}
	if list, _ := c.bs.AccountTxs(state.Address{9}, top, TxPos{}, 100); len(list) != 0 {
		t.Fatalf("an account nothing touched: %v", list)
	}
	// A cursor above maxHeight (from a node further ahead) starts at maxHeight.
	if list, _ := c.bs.AccountTxs(c.a, 3, TxPos{Height: 1000}, 100); !slices.Equal(list, c.want(c.a, 3)) {
		t.Fatalf("a cursor from the future: %v", list)
	}
	// The replay of block 2's first transaction did not move its location.
	loc, err := c.bs.TxLocation(state.HashTx([]byte("tx-2-0")))
	if err != nil || loc.Height != 2 || loc.Index != 0 || loc.Error != "" {
		t.Fatalf("replayed transaction located at %+v %v, want block 2", loc, err)
	}
}

// A rebuild writes exactly what the live path wrote: from scratch, for a store from before the
// indexes (no mark), and for one an older binary ran on (mark behind the blocks).
func TestRebuildIndexesMatchesLive(t *testing.T) {
	c := newIndexChain(t)
	for range 12 {
		c.add(t)
	}
	live := dumpIndexes(t, c.db)
	if at, ok := c.bs.IndexedHeight(); !ok || at != 12 {
		t.Fatalf("indexed height %d %v, want 12", at, ok)
	}
	rebuild := func(what string, full bool) {
		t.Helper()
		var calls int
		n, err := c.bs.RebuildIndexes(c.bs.Height(), full, c.touches, func(uint64, int) { calls++ })
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n == 0 || calls == 0 {
			t.Errorf("%s: %d entries, %d progress reports", what, n, calls)
		}
		sameIndexes(t, what, dumpIndexes(t, c.db), live)
	}
	rebuild("full rebuild", true)

	// A store from before the indexes: no mark, no account entries, only the old tx index.
	b := c.db.NewBatch()
	b.Delete(keyIndexMark)
	it, _ := c.db.Iterator(accountPrefix, prefixEnd(accountPrefix))
	for ; it.Valid(); it.Next() {
		b.Delete(bytes.Clone(it.Key()))
	}
	it.Close()
	b.Write()
	b.Close()
	bs, err := OpenBlockStore(c.db)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bs.IndexedHeight(); ok {
		t.Fatal("a store without the mark reads as indexed")
	}
	c.bs = bs
	rebuild("store from before the indexes", false)

	// An older binary executed blocks 10..12: results and tx index, no account entries, no mark.
	b = c.db.NewBatch()
	b.Set(keyIndexMark, encodeIndexMark(9))
	for h := uint64(10); h <= 12; h++ {
		b.Delete(accountBlockKey(c.a, h))
	}
	b.Write()
	b.Close()
	if c.bs, err = OpenBlockStore(c.db); err != nil {
		t.Fatal(err)
	}
	if at, ok := c.bs.IndexedHeight(); !ok || at != 9 {
		t.Fatalf("indexed height %d %v, want 9", at, ok)
	}
	c.add(t) // live indexing does not advance a stale mark
	if at, _ := c.bs.IndexedHeight(); at != 9 {
		t.Fatalf("a stale mark advanced to %d", at)
	}
	c.add(t)
	for h := uint64(13); h <= 14; h++ { // what a rebuild of the whole chain gives
		touched, _ := c.touches(h, c.txsOf(h), nil)
		byAccount := map[state.Address][]uint32{}
		for i, accts := range touched {
			for _, a := range accts {
				byAccount[a] = append(byAccount[a], uint32(i))
			}
			live[string(txKey(state.HashTx(c.txsOf(h)[i])))] = func() string {
				v, _ := c.db.Get(txKey(state.HashTx(c.txsOf(h)[i])))
				return string(v)
			}()
		}
		for a, idx := range byAccount {
			live[string(accountBlockKey(a, h))] = string(appendAccountIndexes(nil, idx))
		}
	}
	live[string(keyIndexMark)] = string(encodeIndexMark(14))
	rebuild("store an older binary ran on", false)
}

// A failing touch function (a store fault) stops the rebuild without marking it done.
func TestRebuildIndexesStopsOnError(t *testing.T) {
	c := newIndexChain(t)
	for range 3 {
		c.add(t)
	}
	fault := errors.New("disk on fire")
	_, err := c.bs.RebuildIndexes(3, true, func(uint64, [][]byte, []StoredResult) ([][]state.Address, error) {
		return nil, fault
	}, nil)
	if !errors.Is(err, fault) {
		t.Fatalf("rebuild: %v, want the fault", err)
	}
	if _, ok := c.bs.IndexedHeight(); ok {
		t.Fatal("an interrupted rebuild left the indexes marked complete")
	}
}

func TestStoredHeader(t *testing.T) {
	c := newIndexChain(t)
	for range 3 {
		c.add(t)
	}
	sh, err := c.bs.Header(3)
	if err != nil {
		t.Fatal(err)
	}
	value, _, err := c.bs.Block(3)
	if sh.Hash != consensus.DigestOf(value) || sh.Header.Height != 3 || sh.Txs != 4 || sh.Evidence != 0 {
		t.Fatalf("header of block 3: %+v", sh)
	}
	if _, err := c.bs.Header(4); !errors.Is(err, ErrBlockNotFound) {
		t.Fatalf("header of a missing block: %v", err)
	}
	// Transactions picked out of a block by index, whatever the length form of each.
	big := bytes.Repeat([]byte{7}, 70000)
	txs := [][]byte{[]byte("a"), bytes.Repeat([]byte{1}, 24), big, bytes.Repeat([]byte{2}, 300), []byte("z")}
	value, err = (&Block{Header: Header{Height: 4, Time: 44}, Txs: txs}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.bs.SaveBlock(4, value, &consensus.Certificate{Height: 4}); err != nil {
		t.Fatal(err)
	}
	ms, count, got, err := c.bs.BlockTxs(4, []uint32{2, 4, 9})
	if err != nil || ms != 44 || count != 5 || len(got) != 2 || !bytes.Equal(got[2], big) || string(got[4]) != "z" {
		t.Fatalf("transactions 2 and 4 of block 4: %d %d %d %v", ms, count, len(got), err)
	}
	if _, _, _, err := c.bs.BlockTxs(5, nil); !errors.Is(err, ErrBlockNotFound) {
		t.Fatalf("transactions of a missing block: %v", err)
	}
	// Array lengths in every CBOR length form.
	for _, n := range []int{0, 23, 24, 255, 256, 70000} {
		raw, _ := state.Marshal(make([][]byte, n))
		var got cborCount
		if err := got.UnmarshalCBOR(raw); err != nil || int(got) != n {
			t.Errorf("array of %d: %d %v", n, got, err)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, p := range []TxPos{{1, 0}, {42, 7}, {1<<64 - 1, 1<<32 - 1}} {
		got, err := ParseCursor(p.String())
		if err != nil || got != p {
			t.Errorf("%v: %v %v", p, got, err)
		}
	}
	for _, s := range []string{"", "zz", "0000000000000000000000000", "000000000000000000000000",
		"0x00000000000001000000000", "00000000000000010000000G", "00000000000000010000000A", " 00000000000000100000000"} {
		if _, err := ParseCursor(s); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", s, err)
		}
	}
}

// noRecords is a state without records: transfers read none.
type noRecords struct{}

func (noRecords) Identity(string) (state.Identity, error) {
	return state.Identity{}, state.ErrIdentityNotFound
}
func (noRecords) Claim(string) (state.Claim, error)   { return state.Claim{}, state.ErrClaimNotFound }
func (noRecords) Escrow(string) (state.Escrow, error) { return state.Escrow{}, state.ErrEscrowNotFound }
func (noRecords) PrivateEscrow(string) (state.PrivateEscrow, error) {
	return state.PrivateEscrow{}, state.ErrPrivateEscrowNotFound
}

// BenchmarkIndexBlock is what indexing adds to committing a block of 1,000 transfers: what each
// touches, and its index entries put in a batch (not written: that cost is the store engine's).
func BenchmarkIndexBlock(b *testing.B) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	txs := make([][]byte, 1000)
	results := make([]StoredResult, len(txs))
	for i := range txs {
		tx, _ := state.SignTx(state.TxBody{ChainID: "bench", From: from, Nonce: uint64(i),
			Transfer: &state.Transfer{To: state.Address{byte(i), byte(i >> 8)}, Amount: 1}}, key)
		txs[i], _ = tx.Encode()
		results[i].Hash = state.HashTx(txs[i])
	}
	db, _ := kv.Open(kv.MemDB, "", "")
	defer db.Close()
	bs, _ := OpenBlockStore(db)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		touched, err := blockTouches(noRecords{}, uint64(i+1), txs, nil, results)
		if err != nil {
			b.Fatal(err)
		}
		batch := db.NewBatch()
		if err := bs.newIndexWriter(batch).block(uint64(i+1), results, touched); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
	b.ReportMetric(float64(b.N*len(txs))/b.Elapsed().Seconds(), "txs/s")
}

// The index of a block read from the transactions execution decoded is the one decoding them
// again gives, including for a transaction refused before execution (nil there) and one that
// failed in execution.
func TestBlockTouchesFromDecodedTxs(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	txs := make([][]byte, 4)
	decoded := make([]*state.Tx, len(txs))
	results := make([]StoredResult, len(txs))
	for i := range txs {
		tx, _ := state.SignTx(state.TxBody{ChainID: "idx", From: from, Nonce: uint64(i),
			Transfer: &state.Transfer{To: state.Address{byte(i + 1)}, Amount: 1}}, key)
		txs[i], _ = tx.Encode()
		decoded[i] = tx
		results[i].Hash = state.HashTx(txs[i])
	}
	decoded[1] = nil // refused before execution: decoded again
	results[1].Error = "state: bad signature"
	results[2].Error = "state: insufficient funds"
	want, err := blockTouches(noRecords{}, 7, txs, nil, results)
	if err != nil {
		t.Fatal(err)
	}
	got, err := blockTouches(noRecords{}, 7, txs, decoded, results)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("from decoded: %v\ndecoding again: %v", got, want)
	}
	if len(got[3]) != 2 {
		t.Fatalf("a transfer touches its sender and recipient, got %v", got[3])
	}
}

// An account entry's value gives back the indexes it was made of; a damaged one is refused as
// corrupt, never read as other indexes.
func TestAccountIndexesCodec(t *testing.T) {
	for _, idx := range [][]uint32{{0}, {7}, {0, 1, 2}, {3, 200, 201, 70000, math.MaxUint32}} {
		got, err := decodeAccountIndexes(appendAccountIndexes(nil, idx))
		if err != nil || !slices.Equal(got, idx) {
			t.Errorf("%v: decoded %v %v", idx, got, err)
		}
	}
	for _, bad := range [][]byte{
		{},                                // no index
		{0x80},                            // truncated uvarint
		{1, 0},                            // an index twice
		{0xff, 0xff, 0xff, 0xff, 0x0f, 1}, // past MaxUint32
	} {
		if got, err := decodeAccountIndexes(bad); !errors.Is(err, ErrStoreCorrupt) {
			t.Errorf("%x: decoded %v %v, want corrupt", bad, got, err)
		}
	}
}

// A transaction that names an account twice (a transfer to its own sender) is listed once, and
// the account's entry is one per block.
func TestAccountTxsTransactionTouchingTwice(t *testing.T) {
	c := newIndexChain(t)
	self := state.Address{7}
	results := []StoredResult{{Hash: state.Hash{1}}, {Hash: state.Hash{2}}, {Hash: state.Hash{3}}}
	touched := [][]state.Address{{self, self}, {c.b}, {self, c.b}}
	if err := c.bs.SaveResults(1, results, touched); err != nil {
		t.Fatal(err)
	}
	list, err := c.bs.AccountTxs(self, 1, TxPos{}, 10)
	if want := []TxPos{{1, 2}, {1, 0}}; err != nil || !slices.Equal(list, want) {
		t.Fatalf("history %v %v, want %v", list, err, want)
	}
	it, _ := c.db.Iterator(accountPrefix, prefixEnd(accountPrefix))
	defer it.Close()
	keys := 0
	for ; it.Valid(); it.Next() {
		keys++
	}
	if keys != 2 {
		t.Fatalf("%d account entries for one block touching two accounts, want 2", keys)
	}
}

// Two rejected copies of one transaction in a block: the index keeps the later one, as writing
// them in block order did before the entries were sorted.
func TestTxIndexDuplicateInBlockKeepsLast(t *testing.T) {
	c := newIndexChain(t)
	h := state.Hash{9}
	results := []StoredResult{{Hash: h, Error: "bad"}, {Hash: state.Hash{1}}, {Hash: h, Error: "worse"}}
	if err := c.bs.SaveResults(1, results, make([][]state.Address, 3)); err != nil {
		t.Fatal(err)
	}
	if loc, err := c.bs.TxLocation(h); err != nil || loc.Index != 2 || loc.Error != "worse" {
		t.Fatalf("located at %+v %v, want index 2", loc, err)
	}
}

// A store indexed by the previous version (an entry per transaction and account) is rebuilt
// whole at start: none of its account entries is left for a history page to trip on.
func TestIndexesOfVersion1Rebuilt(t *testing.T) {
	c := newIndexChain(t)
	for range 6 {
		c.add(t)
	}
	live := dumpIndexes(t, c.db)
	// What version 1 wrote: its mark, and "h/" ‖ address ‖ ^height ‖ ^index → empty.
	b := c.db.NewBatch()
	it, _ := c.db.Iterator(accountPrefix, prefixEnd(accountPrefix))
	for ; it.Valid(); it.Next() {
		b.Delete(bytes.Clone(it.Key()))
	}
	it.Close()
	for h := uint64(1); h <= 6; h++ {
		touched, _ := c.touches(h, c.txsOf(h), nil)
		for i, accts := range touched {
			for _, a := range accts {
				b.Set(binary.BigEndian.AppendUint32(accountBlockKey(a, h), ^uint32(i)), nil)
			}
		}
	}
	mark := binary.BigEndian.AppendUint32(nil, 1)
	b.Set(keyIndexMark, binary.BigEndian.AppendUint64(mark, 6))
	b.Write()
	b.Close()
	bs, err := OpenBlockStore(c.db)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bs.IndexedHeight(); ok {
		t.Fatal("a version 1 index reads as current")
	}
	if _, err := bs.RebuildIndexes(6, false, c.touches, nil); err != nil {
		t.Fatal(err)
	}
	sameIndexes(t, "rebuilt from version 1", dumpIndexes(t, c.db), live)
	if list, err := bs.AccountTxs(c.a, 6, TxPos{}, 100); err != nil || !slices.Equal(list, c.want(c.a, 6)) {
		t.Fatalf("history after the rebuild: %v %v", list, err)
	}
}

// A location written by hand is the codec's encoding, for every size of height and index.
func TestAppendTxLocationMatchesCodec(t *testing.T) {
	vals := []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}
	for _, h := range vals {
		for _, i := range vals {
			if i > math.MaxUint32 {
				continue
			}
			for _, e := range []string{"", "nonce too low"} {
				loc := TxLocation{Height: h, Index: uint32(i), Error: e}
				want, err := state.Marshal(loc)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := appendTxLocation(nil, loc); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%+v: %x %v, want %x", loc, got, err, want)
				}
			}
		}
	}
}

// Results written by hand are the codec's encoding: no error, errors of every length class, and
// arrays long enough for each size of head.
func TestAppendResultsMatchesCodec(t *testing.T) {
	for _, n := range []int{0, 1, 23, 24, 300, 70000} {
		results := make([]StoredResult, n)
		for i := range results {
			results[i].Hash = state.HashTx([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
			switch i % 5 {
			case 1:
				results[i].Error = "nonce too low"
			case 2:
				results[i].Error = string(bytes.Repeat([]byte("é"), i%300))
			case 3:
				if i < 25 {
					results[i].Error = string(bytes.Repeat([]byte("x"), []int{24, 255, 256, 65535, 65536}[i/5]))
				}
			}
		}
		want, err := state.Marshal(results)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendResults(nil, results); !bytes.Equal(got, want) {
			t.Fatalf("%d results: hand-written encoding differs from the codec's", n)
		}
	}
}
