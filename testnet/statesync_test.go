package testnet

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
)

// A validator wiped of all chain data rejoins a running 4-node testnet by state sync: it restores
// the newest snapshot its peers offer (snapshots every 10 blocks, cut into 1 KiB chunks so there
// are many), verified against the certified header, then block-syncs only the blocks after it,
// reaches the tip, and applies every later block (each checked against its header's state root,
// so its state is the others'). Below the snapshot it holds no block, and says so with 410.
func TestWipedNodeJoinsByStateSync(t *testing.T) {
	limit := 3 * time.Minute
	tn := startTestnetWith(t, limit, func(c *node.Config) {
		c.Consensus.EmptyBlockMillis = 20
		c.StateSync.SnapshotInterval = 10
		c.StateSync.ChunkBytes = 1024
		c.StateSync.DiscoveryMillis = 1000
	})
	ctx, dir, bin, clients := tn.ctx, tn.dir, tn.bin, tn.clients

	load := LoadOptions{Dir: dir, Passphrase: testPassphrase, Rate: 100, Duration: 2 * time.Second, Accounts: 8}
	rep, err := RunLoad(ctx, load)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if rep.Finalized == 0 {
		t.Fatalf("load finalized nothing: %+v", rep)
	}
	waitHeightsFor(t, ctx, clients, 60, time.Minute)

	const k = 4
	if _, err := Kill(dir, k); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Wipe(dir, k); err != nil {
		t.Fatal(err)
	}
	home := tn.m.Nodes[k-1].Home
	cfg, err := node.LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateSync.Enable = true
	if err := node.SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	others, joiner := clients[:k-1], clients[k-1]
	// The chain moves on without it, past the next snapshots, so that the joiner has blocks
	// after its snapshot to block-sync.
	target := uint64(0)
	for _, h := range waitHeightsFor(t, ctx, others, 85, time.Minute) {
		target = max(target, h)
	}
	start := time.Now()
	// While it restores, its API address answers /readyz 503.
	unready := make(chan bool, 1)
	go func() {
		for ctx.Err() == nil {
			if rd, err := joiner.Ready(ctx); err == nil && !rd.Ready && len(rd.Reasons) > 0 && rd.Reasons[0] == "state sync in progress" {
				unready <- true
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if _, _, err := Restart(ctx, dir, k, bin); err != nil {
		t.Fatal(err)
	}
	waitHeightsFor(t, ctx, []*api.Client{joiner}, target, time.Minute)
	elapsed := time.Since(start)

	st, err := joiner.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := st.EarliestHeight
	// The chain moves on while node4 restarts: its snapshot may be past target, never past its
	// own height.
	if base < 10 || base%10 != 0 || base > st.Height {
		t.Fatalf("node%d's earliest block is %d: want a snapshot height (a multiple of 10) up to its height %d", k, base, st.Height)
	}
	// It did not fetch the early blocks: block sync brought at most those after the snapshot.
	if synced := metricValue(t, ctx, joiner.Base(), "guild_sync_blocks_total"); synced > float64(st.Height-base) {
		t.Errorf("node%d block-synced %.0f blocks, but only %d follow its snapshot at %d", k, synced, st.Height-base, base)
	}
	var apiErr *api.Error
	if _, err := joiner.Block(ctx, 1); !errors.As(err, &apiErr) || apiErr.Status != http.StatusGone || apiErr.Code != api.CodePruned {
		t.Errorf("block 1 from node%d: %v, want 410 %s", k, err, api.CodePruned)
	}
	if _, err := joiner.Block(ctx, base); err != nil {
		t.Errorf("node%d does not serve its base block %d: %v", k, base, err)
	}
	select {
	case <-unready:
	default:
		t.Errorf("node%d never answered /readyz 503 \"state sync in progress\" while restoring", k)
	}
	log, _ := os.ReadFile(filepath.Join(home, LogFile))
	if !strings.Contains(string(log), "state sync done") {
		t.Errorf("node%d's log has no \"state sync done\"", k)
	}

	// It keeps up: the next blocks, each checked against its header's state root, apply on the
	// restored state, and every node holds the same block at each height after the snapshot.
	next := max(target, st.Height) + 5
	waitHeightsFor(t, ctx, clients, next, time.Minute)
	for h := base; h <= next; h++ {
		var hash string
		for i, c := range clients {
			b, err := c.Block(ctx, h)
			if err != nil {
				t.Fatalf("node%d block %d: %v", i+1, h, err)
			}
			if hash == "" {
				hash = b.Hash
			} else if b.Hash != hash {
				t.Fatalf("block %d: node%d has %s, node1 has %s", h, i+1, b.Hash, hash)
			}
		}
	}
	t.Logf("wiped node%d joined by state sync at height %d and was at %d (the others at least %d) %v after its restart; "+
		"all 4 nodes agree on blocks %d..%d", k, base, st.Height, target, elapsed.Round(time.Millisecond), base, next)
}
