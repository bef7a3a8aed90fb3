package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// syncChain is a 4-validator chain whose validator keys the test holds, so it can certify blocks.
type syncChain struct {
	gen     *Genesis
	valKeys []ed25519.PrivateKey
	payer   ed25519.PrivateKey
}

func newSyncChain(t testing.TB) *syncChain {
	t.Helper()
	c := &syncChain{gen: &Genesis{ChainID: "sync-test", GenesisTime: time.Now().UTC().Truncate(time.Second)}}
	for i := range 4 {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		c.valKeys = append(c.valKeys, priv)
		c.gen.Validators = append(c.gen.Validators, GenesisValidator{Name: string(rune('a' + i)), PubKey: hex.EncodeToString(pub), Power: 1})
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	c.payer = priv
	c.gen.Accounts = []GenesisAccount{{Address: state.AddressFromPubKey(pub), Balance: 1 << 40}}
	if err := c.gen.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// home makes an observer's home (its validator key is in no validator set) on this chain.
func (c *syncChain) home(t testing.TB) string {
	t.Helper()
	home := t.TempDir()
	if _, err := InitHome(home, "sync"); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Storage.Backend = "memdb"
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.gen.Save(filepath.Join(home, GenesisFile)); err != nil {
		t.Fatal(err)
	}
	return home
}

// certify signs a commit certificate for digest at height with the given validator keys.
func certify(chainID string, keys []ed25519.PrivateKey, height uint64, digest consensus.Digest) consensus.Certificate {
	cert := consensus.Certificate{Height: height, Digest: digest}
	for i, k := range keys {
		m := consensus.Message{Type: consensus.MsgCommit, Height: height, From: uint32(i), Digest: digest}
		cert.Votes = append(cert.Votes, consensus.Vote{Validator: uint32(i), Sig: ed25519.Sign(k, consensus.SignBytes(chainID, &m))})
	}
	return cert
}

// grow commits blocks 1..blocks on n, each with txsPerBlock transfers, certified by validators 0-2.
func (c *syncChain) grow(t *testing.T, n *Node, blocks, txsPerBlock int) {
	t.Helper()
	nonce := uint64(0)
	for h := uint64(1); h <= uint64(blocks); h++ {
		var txs [][]byte
		for range txsPerBlock {
			txs = append(txs, transfer(t, c.gen.ChainID, c.payer, nonce, state.Address{byte(nonce)}, 1))
			nonce++
		}
		b := Block{Header: ledBy(n, Header{ChainID: c.gen.ChainID, Height: h, Time: n.lastTime + 10, PrevHash: n.lastHash,
			StateRoot: n.st.Root(), TxsHash: TxsHash(txs), ReceiptsRoot: n.st.ReceiptsRoot()}), Txs: txs}
		if b.Txs == nil {
			b.Txs = [][]byte{}
		}
		value, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		cert := certify(c.gen.ChainID, c.valKeys[:3], h, consensus.DigestOf(value))
		if err := n.commit(consensus.Committed{Height: h, Value: value, Certificate: cert}); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeSyncNet serves block sync from in-process peers.
type fakeSyncNet map[string]fakeSyncPeer

type fakeSyncPeer struct {
	height uint64
	fetch  func(from uint64, max int) ([]p2p.SyncedBlock, error)
	// status, if set, answers status requests instead of height.
	status func(ctx context.Context) (uint64, error)
}

func (f fakeSyncNet) ConnectedPeers() []string {
	var out []string
	for p := range f {
		out = append(out, p)
	}
	return out
}

func (f fakeSyncNet) SyncStatus(ctx context.Context, p string) (uint64, error) {
	if st := f[p].status; st != nil {
		return st(ctx)
	}
	return f[p].height, nil
}

func (f fakeSyncNet) FetchBlocks(_ context.Context, p string, from uint64, max int) ([]p2p.SyncedBlock, error) {
	return f[p].fetch(from, max)
}

// A node far behind fetches from its peers: one serves blocks under a forged certificate, one
// claims blocks and serves none. Both are dropped (and counted), and the honest one brings the
// node to the tip, with the same blocks and state as the node that made them. Peers are picked in
// ID order, so the forger is asked first and the withholder for the second batch.
func TestSyncDropsForgerAndWithholder(t *testing.T) {
	c := newSyncChain(t)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.closeStores()
	const blocks = 300
	c.grow(t, src, blocks, 3)

	dst, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.closeStores()
	impostors := make([]ed25519.PrivateKey, 3)
	for i := range impostors {
		_, impostors[i], _ = ed25519.GenerateKey(rand.Reader)
	}
	honest := func(from uint64, max int) ([]p2p.SyncedBlock, error) {
		return src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
	}
	var forgedServed int
	net := fakeSyncNet{
		"a-forger": {height: blocks, fetch: func(from uint64, max int) ([]p2p.SyncedBlock, error) {
			out, err := honest(from, max)
			for i := range out {
				cert := certify(c.gen.ChainID, impostors, out[i].Height, consensus.DigestOf(out[i].Block))
				out[i].Certificate, _ = state.Marshal(&cert)
			}
			forgedServed += len(out)
			return out, err
		}},
		"b-honest": {height: blocks, fetch: honest},
		"c-withholder": {height: blocks, fetch: func(uint64, int) ([]p2p.SyncedBlock, error) {
			return nil, nil
		}},
	}
	s := dst.newSyncer(net)
	s.apply = func(_ context.Context, bs []syncedBlock) error {
		_, local, fatal := dst.applySynced(bs)
		return errors.Join(local, fatal)
	}
	s.round(context.Background())

	if forgedServed == 0 {
		t.Fatal("the forger was never asked")
	}
	if got := dst.blocks.Height(); got != blocks {
		t.Fatalf("synced to %d, want %d", got, blocks)
	}
	for h := uint64(1); h <= blocks; h++ {
		want, _, _ := src.blocks.Block(h)
		got, cert, err := dst.blocks.Block(h)
		if err != nil || string(got) != string(want) {
			t.Fatalf("block %d differs from the source's (%v)", h, err)
		}
		if err := consensus.VerifyCertificate(c.gen.ChainID, c.gen.ValidatorSet(), cert); err != nil {
			t.Fatalf("stored certificate %d: %v", h, err)
		}
	}
	if dst.st.Root() != src.st.Root() || dst.lastHash != src.lastHash {
		t.Fatalf("state root %s / tip %s, source has %s / %s", dst.st.Root(), dst.lastHash, src.st.Root(), src.lastHash)
	}
	for p, reason := range map[string]string{"a-forger": "invalid", "c-withholder": "withheld"} {
		if _, ok := s.dropped[p]; !ok {
			t.Errorf("%s was not dropped", p)
		}
		if n := counterValue(t, dst, "guild_sync_peers_dropped_total", reason); n != 1 {
			t.Errorf("guild_sync_peers_dropped_total{reason=%q} = %v, want 1", reason, n)
		}
	}
	if _, ok := s.dropped["b-honest"]; ok {
		t.Error("the honest peer was dropped")
	}
	if n := counterValue(t, dst, "guild_sync_blocks_total", ""); n != blocks {
		t.Errorf("guild_sync_blocks_total = %v, want %d", n, blocks)
	}
	if n := counterValue(t, dst, "guild_sync_txs_total", ""); n != 3*blocks {
		t.Errorf("guild_sync_txs_total = %v, want %d", n, 3*blocks)
	}

	// Dropped peers are not asked again while their time runs, even when they are all there is.
	more := dst.blocks.Height()
	s.net = fakeSyncNet{"a-forger": net["a-forger"], "c-withholder": net["c-withholder"]}
	before := forgedServed
	s.round(context.Background())
	if forgedServed != before || dst.blocks.Height() != more {
		t.Fatalf("a dropped peer was asked again (served %d more), height %d", forgedServed-before, dst.blocks.Height())
	}
}

// A peer whose stream breaks in mid-answer (a link reset closed its connection) is not taken for
// a liar: it is left aside for syncDropBroken, not syncDropLied, and the others finish the job.
func TestSyncBrokenStreamIsNoLie(t *testing.T) {
	c := newSyncChain(t)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.closeStores()
	const blocks = 200
	c.grow(t, src, blocks, 1)
	dst, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.closeStores()
	honest := func(from uint64, max int) ([]p2p.SyncedBlock, error) {
		return src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
	}
	net := fakeSyncNet{
		"a-cut": {height: blocks, fetch: func(from uint64, max int) ([]p2p.SyncedBlock, error) {
			out, _ := honest(from, max)
			return out[:len(out)/2], fmt.Errorf("%w: block %d: connection closed", p2p.ErrSyncBroken, from+uint64(len(out)/2))
		}},
		"b-honest": {height: blocks, fetch: honest},
	}
	s := dst.newSyncer(net)
	s.apply = func(_ context.Context, bs []syncedBlock) error {
		_, local, fatal := dst.applySynced(bs)
		return errors.Join(local, fatal)
	}
	start := time.Now()
	s.round(context.Background())
	if got := dst.blocks.Height(); got != blocks {
		t.Fatalf("synced to %d, want %d", got, blocks)
	}
	until, ok := s.dropped["a-cut"]
	if !ok || !until.Before(start.Add(syncDropWithheld)) {
		t.Fatalf("the peer whose stream broke is left aside until %v (%v from the start), want about %v",
			until, until.Sub(start), syncDropBroken)
	}
	if n := counterValue(t, dst, "guild_sync_peers_dropped_total", "broken"); n != 1 {
		t.Errorf("guild_sync_peers_dropped_total{reason=\"broken\"} = %v, want 1", n)
	}
	if n := counterValue(t, dst, "guild_sync_peers_dropped_total", "invalid"); n != 0 {
		t.Errorf("guild_sync_peers_dropped_total{reason=\"invalid\"} = %v, want 0", n)
	}
}

// verifySynced refuses each way a served block can lie, with ErrSyncBadBlock.
func TestVerifySyncedRefusesLies(t *testing.T) {
	c := newSyncChain(t)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.closeStores()
	c.grow(t, src, 3, 1)
	vals := c.gen.ValidatorSet()
	served, _ := src.SyncBlocks(2, 1, 1<<20)
	good := served[0]
	parent, _, _ := src.blocks.Block(1)
	prev := state.Hash(consensus.DigestOf(parent))
	if _, _, err := verifySynced(c.gen.ChainID, vals, 2, prev, &good); err != nil {
		t.Fatalf("the honest block: %v", err)
	}
	other, _ := src.SyncBlocks(3, 1, 1<<20)
	short := certify(c.gen.ChainID, c.valKeys[:2], 2, consensus.DigestOf(good.Block))
	wrongHeight := certify(c.gen.ChainID, c.valKeys[:3], 3, consensus.DigestOf(good.Block))
	enc := func(cert consensus.Certificate) []byte { b, _ := state.Marshal(&cert); return b }
	for name, g := range map[string]p2p.SyncedBlock{
		"certificate of another block": {Height: 2, Block: good.Block, Certificate: other[0].Certificate},
		"block under another's cert":   {Height: 2, Block: other[0].Block, Certificate: good.Certificate},
		"no quorum":                    {Height: 2, Block: good.Block, Certificate: enc(short)},
		"certificate for other height": {Height: 2, Block: good.Block, Certificate: enc(wrongHeight)},
		"garbage certificate":          {Height: 2, Block: good.Block, Certificate: []byte{0xff, 0x00}},
		"garbage block":                {Height: 2, Block: []byte("junk"), Certificate: good.Certificate},
		"wrong height":                 {Height: 3, Block: good.Block, Certificate: good.Certificate},
	} {
		if _, _, err := verifySynced(c.gen.ChainID, vals, 2, prev, &g); !errors.Is(err, ErrSyncBadBlock) {
			t.Errorf("%s: %v, want ErrSyncBadBlock", name, err)
		}
	}
	if _, _, err := verifySynced(c.gen.ChainID, vals, 2, state.Hash{1}, &good); !errors.Is(err, ErrSyncBadBlock) {
		t.Errorf("broken parent hash: %v, want ErrSyncBadBlock", err)
	}
}

// counterValue reads a counter from n's registry, the one with the given label value if any.
func counterValue(t *testing.T, n *Node, name, label string) float64 {
	t.Helper()
	mfs, err := n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A node whose state differs from the chain's (here: another genesis balance) cannot apply the
// certified blocks: sync stops and backs off, applies nothing, and blames no peer for it.
func TestSyncStopsOnOwnDivergence(t *testing.T) {
	c := newSyncChain(t)
	src, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.closeStores()
	c.grow(t, src, 5, 1)

	c.gen.Accounts[0].Balance++
	dst, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.closeStores()
	asked := 0
	s := dst.newSyncer(fakeSyncNet{"honest": {height: 5, fetch: func(from uint64, max int) ([]p2p.SyncedBlock, error) {
		asked++
		return src.SyncBlocks(from, max, p2p.DefaultSyncResponseBytes)
	}}})
	s.apply = func(_ context.Context, bs []syncedBlock) error {
		_, local, fatal := dst.applySynced(bs)
		return errors.Join(local, fatal)
	}
	s.round(context.Background())
	if asked == 0 || dst.blocks.Height() != 0 {
		t.Fatalf("asked %d times, height %d; want asked, nothing applied", asked, dst.blocks.Height())
	}
	if len(s.dropped) != 0 {
		t.Fatalf("peers dropped for this node's own divergence: %v", s.dropped)
	}
	if time.Until(s.notBefore) < syncLocalBackoff/2 {
		t.Fatalf("no back-off after a local failure: next round at %v", s.notBefore)
	}
}

// A frozen peer (SIGSTOP) keeps its connection and never answers. A round must not wait the
// whole status timeout for it (issue #9: every round of a node catching up waited 2 s while
// another node was paused): the frozen peer's request is ended once the others have answered.
func TestSyncStatusesDoNotWaitForAFrozenPeer(t *testing.T) {
	c := newSyncChain(t)
	dst, err := New(c.home(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.closeStores()
	ended := make(chan error, 1)
	net := fakeSyncNet{
		"a": {height: 7},
		"b": {height: 9},
		"frozen": {status: func(ctx context.Context) (uint64, error) {
			<-ctx.Done()
			ended <- ctx.Err()
			return 0, ctx.Err()
		}},
	}
	got := dst.newSyncer(net).statuses(context.Background())
	if len(got) != 2 || got["a"] != 7 || got["b"] != 9 {
		t.Fatalf("statuses = %v, want a at 7 and b at 9", got)
	}
	// Canceled, not DeadlineExceeded: the round went on before the status timeout.
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("the frozen peer's request ended with %v, want it cancelled before the status timeout", err)
	}
}
