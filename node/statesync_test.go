package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/light"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// snapshotChain is a node of a syncChain that took a snapshot at height 10 (its only one) of a 12-block chain
// (the snapshot is offered once block 11, which certifies its root, is stored).
func snapshotChain(t *testing.T) (*syncChain, *Node) {
	t.Helper()
	c := newSyncChain(t)
	src := snapshotSource(t, c)
	c.grow(t, src, 12, 30)
	waitSnapshot(t, src, 10)
	return c, src
}

// snapshotSource is a node of c, stopped at the test's end, that snapshots every 10 blocks in
// chunks of 1 KiB.
func snapshotSource(t *testing.T, c *syncChain) *Node {
	t.Helper()
	src, err := New(c.home(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(src.stopping)
		src.wg.Wait()
		src.closeStores()
	})
	src.snaps.interval, src.snaps.chunkBytes = 10, 1024
	return src
}

// fakeSnapshotNet serves state sync from in-process sources; penalized records who was blamed.
type fakeSnapshotNet struct {
	peers     map[string]p2p.SnapshotSource
	mu        sync.Mutex
	penalized map[string]int
}

func (f *fakeSnapshotNet) ConnectedPeers() []string {
	var out []string
	for p := range f.peers {
		out = append(out, p)
	}
	return out
}

func (f *fakeSnapshotNet) SnapshotOffer(_ context.Context, p string) ([]byte, error) {
	b, err := f.peers[p].SnapshotOffer()
	if err == nil && b == nil {
		err = p2p.ErrNoSnapshot
	}
	return b, err
}

func (f *fakeSnapshotNet) SnapshotChunk(_ context.Context, p string, h uint64, i uint32) ([]byte, error) {
	b, err := f.peers[p].SnapshotChunk(h, i)
	if err == nil && b == nil {
		err = p2p.ErrNoSnapshot
	}
	return b, err
}

func (f *fakeSnapshotNet) SnapshotValidatorChange(_ context.Context, p string, h uint64, i uint32) ([]byte, error) {
	b, err := f.peers[p].SnapshotValidatorChange(h, i)
	if err == nil && b == nil {
		err = p2p.ErrNoSnapshot
	}
	return b, err
}

func (f *fakeSnapshotNet) Penalize(p string, _ float64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.penalized[p]++
	return nil
}

// corruptChunks serves its source's offer, and its chunks with one bit flipped.
type corruptChunks struct{ p2p.SnapshotSource }

func (c corruptChunks) SnapshotChunk(h uint64, i uint32) ([]byte, error) {
	b, err := c.SnapshotSource.SnapshotChunk(h, i)
	if len(b) > 0 {
		b = bytes.Clone(b)
		b[len(b)/2] ^= 1
	}
	return b, err
}

func mustLightGenesis(t testing.TB, gen *Genesis) *light.Genesis {
	t.Helper()
	g, err := lightGenesis(gen)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// noChanges serves no validator set change.
func noChanges(uint64, uint32) ([]byte, error) { return nil, p2p.ErrNoSnapshot }

func newTestStateSyncer(t testing.TB, c *syncChain, net snapshotNet) (*stateSyncer, kv.Store) {
	db, _ := kv.Open(kv.MemDB, "", "")
	return &stateSyncer{host: net, chainID: c.gen.ChainID, genesis: mustLightGenesis(t, c.gen), db: db,
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		metrics: newStateSyncMetrics(prometheus.NewRegistry()), discovery: time.Millisecond, bad: map[string]bool{}}, db
}

// A joining node restores the snapshot from an honest peer and a peer that corrupts chunks: each
// bad chunk is refused, fetched again from the honest one, and the liar penalized; the state it
// ends with is the source's at the snapshot's height.
func TestStateSyncRefetchesBadChunkAndPenalizes(t *testing.T) {
	c, src := snapshotChain(t)
	net := &fakeSnapshotNet{peers: map[string]p2p.SnapshotSource{"honest": src.snaps, "liar": corruptChunks{src.snaps}},
		penalized: map[string]int{}}
	ss, db := newTestStateSyncer(t, c, net)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, offer, err := ss.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Height != 10 || offer.m.Height != 10 || res.Chunks < 4 {
		t.Fatalf("restored height %d in %d chunks, want 10 in several", res.Height, res.Chunks)
	}
	if net.penalized["liar"] == 0 || net.penalized["honest"] != 0 || !ss.bad["liar"] {
		t.Fatalf("penalized %v, want the liar only", net.penalized)
	}
	if v := counterValueOf(t, ss.metrics.failures.WithLabelValues("bad_chunk")); v == 0 {
		t.Error("no bad chunk counted")
	}
	st, err := state.Open(db, c.gen.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	// The root certified by block 11 is the state after block 10 on the source.
	_, cert, err := src.blocks.Block(11)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := src.blocks.Header(11)
	if err != nil || hdr.Hash != cert.Digest {
		t.Fatal(err)
	}
	if st.Height() != 10 || st.Root() != hdr.Header.StateRoot {
		t.Fatalf("restored state at %d root %s, want 10 %s", st.Height(), st.Root(), hdr.Header.StateRoot)
	}
}

// With only a peer that corrupts chunks, the restore fails and the store holds no state: nothing
// unverified is ever used.
func TestStateSyncNeverUsesUnverifiedState(t *testing.T) {
	c, src := snapshotChain(t)
	net := &fakeSnapshotNet{peers: map[string]p2p.SnapshotSource{"liar": corruptChunks{src.snaps}}, penalized: map[string]int{}}
	ss, db := newTestStateSyncer(t, c, net)
	cands := ss.offers(context.Background())
	if len(cands) != 1 {
		t.Fatalf("%d offers, want the liar's (its offer is honest)", len(cands))
	}
	err := ss.restore(context.Background(), cands[0])
	if !errors.Is(err, ErrStateSync) {
		t.Fatalf("restore from a liar: %v, want ErrStateSync", err)
	}
	if net.penalized["liar"] == 0 {
		t.Error("the liar was not penalized")
	}
	st, err := state.Open(db, c.gen.ChainID)
	if err != nil || st.Initialised() {
		t.Fatalf("a failed restore left a state (%v)", err)
	}
}

// Offers that do not tie the manifest to a certified header are refused: a root other than the
// certified one, a certificate short of a quorum, another chain, a block h that is not block
// h+1's parent, results of block h other than those whose receipts root block h+1 certifies.
func TestStateSyncRefusesUnverifiableOffers(t *testing.T) {
	c, src := snapshotChain(t)
	raw, err := src.snaps.SnapshotOffer()
	if err != nil || raw == nil {
		t.Fatalf("offer: %v", err)
	}
	g := mustLightGenesis(t, c.gen)
	other := *c.gen
	other.ChainID = "another-chain"
	if _, err := verifyOffer(g, raw, noChanges); err != nil {
		t.Fatalf("honest offer refused: %v", err)
	}
	var o snapshotOffer
	if err := state.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	m, err := state.DecodeSnapshotManifest(o.Manifest, c.gen.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	encode := func(o snapshotOffer) []byte {
		b, err := state.Marshal(&o)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wrongRoot := o
	lie := *m
	lie.Root[0] ^= 1
	wrongRoot.Manifest, _ = state.Marshal(&lie)

	// Block 11 certified by two validators of four: no quorum, so height 10 is not certified.
	weak := o
	cert := certify(c.gen.ChainID, c.valKeys[:2], 11, consensus.DigestOf(o.Next))
	weak.NextCert, _ = state.Marshal(&cert)

	notParent := o
	b12, c12, err := src.blocks.Block(12)
	if err != nil {
		t.Fatal(err)
	}
	notParent.Block = b12
	notParent.Cert, _ = state.Marshal(c12)

	// Block 10's results with one transaction's outcome flipped: not the certified receipts.
	wrongResults := o
	var results []StoredResult
	if err := state.Unmarshal(o.Results, &results); err != nil || len(results) == 0 {
		t.Fatalf("results of block 10: %d, %v", len(results), err)
	}
	results[0].Error = "rejected after all"
	wrongResults.Results, _ = state.Marshal(results)

	for name, tc := range map[string]struct {
		raw     []byte
		genesis *light.Genesis
	}{
		"wrong root":    {encode(wrongRoot), g},
		"uncertified":   {encode(weak), g},
		"wrong chain":   {raw, mustLightGenesis(t, &other)},
		"not a parent":  {encode(notParent), g},
		"wrong results": {encode(wrongResults), g},
		"garbage":       {[]byte{0xa1, 0x01}, g},
	} {
		if _, err := verifyOffer(tc.genesis, tc.raw, noChanges); !errors.Is(err, errBadOffer) {
			t.Errorf("%s: %v, want errBadOffer", name, err)
		}
	}
}

func counterValueOf(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// With storage.keep_blocks a node deletes old blocks, their results and their transactions'
// index entries, a few per commit, but never the block of a kept snapshot; below the new base,
// blocks are ErrBlockPruned and the account history stops.
func TestPruneKeepsLastBlocksAndSnapshots(t *testing.T) {
	c := newSyncChain(t)
	n := c.pruningNode(t)
	n.cfg.Storage.KeepBlocks = 5
	n.snaps.oldest.Store(12) // a kept snapshot at 12 needs blocks 12 and 13
	c.grow(t, n, 30, 2)
	if got := n.blocks.Earliest(); got != 12 {
		t.Fatalf("earliest block %d, want 12 (the kept snapshot's)", got)
	}
	n.snaps.oldest.Store(0)
	n.pruneBlocks(30)
	if got := n.blocks.Earliest(); got != 26 {
		t.Fatalf("earliest block %d, want 26 (the last 5 of 30)", got)
	}
	if _, _, err := n.blocks.Block(25); !errors.Is(err, ErrBlockPruned) {
		t.Fatalf("block 25: %v, want ErrBlockPruned", err)
	}
	if _, _, err := n.blocks.Block(26); err != nil {
		t.Fatal(err)
	}
	if res, err := n.blocks.Results(3); err != nil || res != nil {
		t.Fatalf("results of pruned block 3: %v, %v", res, err)
	}
	// Block 3's first transfer (grow's nonces run 0, 1 in block 1, so 4 in block 3).
	pruned := transfer(t, c.gen.ChainID, c.payer, 4, state.Address{4}, 1)
	if _, err := n.blocks.TxLocation(state.HashTx(pruned)); !errors.Is(err, ErrBlockNotFound) {
		t.Fatalf("a pruned block's transaction is still indexed: %v", err)
	}
	value, _, _ := n.blocks.Block(30)
	b, _ := DecodeBlock(value)
	if loc, err := n.blocks.TxLocation(state.HashTx(b.Txs[0])); err != nil || loc.Height != 30 {
		t.Fatalf("a kept block's transaction: %+v, %v", loc, err)
	}
	payer := state.AddressFromPubKey(c.payer.Public().(ed25519.PublicKey))
	pos, err := n.blocks.AccountTxs(payer, 30, TxPos{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 10 || pos[len(pos)-1].Height != 26 {
		t.Fatalf("payer's history: %d positions, last %+v; want the 10 of blocks 26..30", len(pos), pos[len(pos)-1])
	}
	if got := counterValue(t, n, "guild_blocks_pruned_total", ""); got != 25 {
		t.Errorf("guild_blocks_pruned_total %v, want 25", got)
	}
}

// pruningNode is an observer node on c, not running, that takes no snapshot of its own: the
// pruning tests commit blocks to it and look at what it keeps.
func (c *syncChain) pruningNode(t *testing.T) *Node {
	t.Helper()
	n, err := New(c.home(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.closeStores)
	n.snaps.interval = 0
	return n
}
