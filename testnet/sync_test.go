package testnet

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
)

// syncBlocksEnv, when set, makes TestWipedNodeResyncs grow the chain to that many blocks (say
// 3000) before the wipe, and print the catch-up speed; unset, a short chain keeps `make test` quick.
// syncRateEnv sets the load (transfers/s for 30 s) put on that long chain; default 500.
const (
	syncBlocksEnv = "GUILD_SYNC_BLOCKS"
	syncRateEnv   = "GUILD_SYNC_RATE"
)

// A validator killed and wiped of all chain data rejoins a running 4-node testnet: restarted, it
// fetches and verifies every block from its peers, reaches their height, takes part in consensus again,
// and every node holds the same block at every height.
func TestWipedNodeResyncs(t *testing.T) {
	blocks, long := uint64(40), false
	if v := os.Getenv(syncBlocksEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n < 10 {
			t.Fatalf("%s=%q: want a number of blocks, at least 10", syncBlocksEnv, v)
		}
		blocks, long = n, true
	}
	emptyMillis := 20
	if long {
		emptyMillis = 5 // blocks come as fast as consensus decides them
	}
	limit := 3*time.Minute + time.Duration(blocks)*200*time.Millisecond
	tn := startTestnetWith(t, limit, func(c *node.Config) { c.Consensus.EmptyBlockMillis = emptyMillis })
	ctx, dir, bin, clients := tn.ctx, tn.dir, tn.bin, tn.clients

	// Transfers in the chain, so the wiped node re-verifies signatures and re-executes them.
	var err error
	load := LoadOptions{Dir: dir, Passphrase: testPassphrase, Rate: 100, Duration: 2 * time.Second, Accounts: 8}
	if long {
		load.Rate, load.Duration, load.Accounts = 500, 30*time.Second, 32
		if v := os.Getenv(syncRateEnv); v != "" {
			if load.Rate, err = strconv.Atoi(v); err != nil || load.Rate < 1 {
				t.Fatalf("%s=%q: want transfers per second", syncRateEnv, v)
			}
		}
	}
	rep, err := RunLoad(ctx, load)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if rep.Finalized == 0 {
		t.Fatalf("load finalized nothing: %+v", rep)
	}
	growStart := time.Now()
	waitHeightsFor(t, ctx, clients, blocks, limit)
	t.Logf("chain grew to %d blocks (%d transfers finalized) in %v", blocks, rep.Finalized, time.Since(growStart).Round(time.Millisecond))

	const k = 4
	if _, err := Kill(dir, k); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Wipe(dir, k); err != nil {
		t.Fatal(err)
	}
	others, wiped := clients[:k-1], clients[k-1]
	target := uint64(0)
	for _, h := range waitHeightsFor(t, ctx, others, 1, time.Minute) {
		target = max(target, h)
	}
	start := time.Now()
	probe := probeReadiness(ctx, wiped, others)
	if _, _, err := Restart(ctx, dir, k, bin); err != nil {
		t.Fatal(err)
	}
	waitHeightsFor(t, ctx, []*api.Client{wiped}, target, limit)
	elapsed := time.Since(start)
	// /readyz (issue #11): 503 while it catches up, never 200 while far behind, 200 once there.
	r := probe.waitReady(t, time.Minute)
	if r.unready == 0 {
		t.Errorf("node%d never answered /readyz 503 while it caught up from height 0 to %d", k, target)
	}
	if r.readyBehind != "" {
		t.Errorf("node%d answered /readyz 200 while behind: %s", k, r.readyBehind)
	}
	t.Logf("node%d /readyz while catching up: %d answers 503 (last reasons %q), then 200", k, r.unready, r.lastReasons)
	// Block sync did it, not consensus's short-range catch-up.
	if synced := metricValue(t, ctx, wiped.Base(), "guild_sync_blocks_total"); synced < float64(target)-2 {
		t.Errorf("node%d reached height %d with only %.0f blocks from block sync", k, target, synced)
	}

	// It joins consensus: a block after the catch-up that node k proposed or whose certificate,
	// as some node stored it, carries node k's commit. (Its first turn as leader may come while
	// it still finishes catching up: then it is skipped as leader for a minute of block time.)
	proposed, how := uint64(0), ""
	for h := target + 1; proposed == 0; h++ {
		waitHeightsFor(t, ctx, clients, h, time.Minute)
		for _, c := range clients {
			b, err := c.Block(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			if b.Header.Proposer == k-1 {
				proposed, how = h, "proposed"
				break
			}
			if slices.ContainsFunc(b.Certificate.Votes, func(v api.VoteJSON) bool { return v.Validator == k-1 }) {
				proposed, how = h, "signed a commit in the certificate of"
				break
			}
		}
		if proposed == 0 && h > target+200 {
			t.Fatalf("node%d neither proposed nor signed a certified commit for blocks %d..%d after catching up", k, target+1, h)
		}
	}

	// Every node holds the same block at every height; count what the wiped node verified.
	txs := 0
	for h := uint64(1); h <= proposed; h++ {
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
			if i == k-1 && h <= target {
				txs += len(b.Txs)
			}
		}
	}
	secs := elapsed.Seconds()
	msg := fmt.Sprintf("wiped node%d caught up %d blocks (%d transfers) in %v (restart included): %.0f blocks/s, %.0f tx/s verified; "+
		"it %s block %d; all 4 nodes agree on blocks 1..%d",
		k, target, txs, elapsed.Round(time.Millisecond), float64(target)/secs, float64(txs)/secs, how, proposed, proposed)
	t.Log(msg)
	if long {
		fmt.Println(msg)
		// The node's own account of each sync round, without the restart.
		log, _ := os.ReadFile(filepath.Join(tn.m.Nodes[k-1].Home, LogFile))
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, `msg="synced blocks"`) {
				fmt.Println("node" + strconv.Itoa(k) + " log: " + line)
			}
		}
	}
}

// waitHeightsFor waits up to limit until every client reports a height of at least h.
func waitHeightsFor(t *testing.T, ctx context.Context, clients []*api.Client, h uint64, limit time.Duration) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	heights := make([]uint64, len(clients))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		low := uint64(math.MaxUint64)
		for i, c := range clients {
			if st, err := c.Status(ctx); err == nil {
				heights[i] = st.Height
			}
			low = min(low, heights[i])
		}
		if low >= h {
			return heights
		}
		select {
		case <-ctx.Done():
			t.Fatalf("nodes at heights %v, want all >= %d: %v", heights, h, ctx.Err())
		case <-tick.C:
		}
	}
}

// metricValue reads one unlabelled metric from a node's /metrics.
func metricValue(t *testing.T, ctx context.Context, api, name string) float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("%s has no metric %s", api, name)
	return 0
}

// readinessProbe polls a node's /readyz (and its height, and the others' highest) every 10 ms
// from before the node starts until it answers 200 at the others' height.
type readinessProbe struct {
	done chan struct{}
	mu   sync.Mutex
	res  readinessResult
}

type readinessResult struct {
	unready     int      // 503 answers
	lastReasons []string // of the last 503
	readyBehind string   // a 200 while far behind the others, if any
	ready       bool     // a 200 at the others' height was seen
}

// readyLag is how far behind the others a node answering 200 may seem: the heights are read one
// after the other from four processes while the chain makes blocks every few milliseconds.
const readyLag = 10

func probeReadiness(ctx context.Context, c *api.Client, others []*api.Client) *readinessProbe {
	p := &readinessProbe{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			var tip uint64
			for _, o := range others {
				if st, err := o.Status(ctx); err == nil {
					tip = max(tip, st.Height)
				}
			}
			rd, err := c.Ready(ctx)
			st, serr := c.Status(ctx)
			p.mu.Lock()
			switch {
			case err != nil || serr != nil: // not started yet
			case !rd.Ready:
				p.res.unready++
				p.res.lastReasons = rd.Reasons
			case st.Height+readyLag < tip:
				if p.res.readyBehind == "" {
					p.res.readyBehind = fmt.Sprintf("at height %d, the others at %d", st.Height, tip)
				}
			case st.Height+1 >= tip:
				p.res.ready = true
			}
			ready := p.res.ready
			p.mu.Unlock()
			if ready {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return p
}

// waitReady waits for the probe to see the node ready at the tip, and returns what it saw.
func (p *readinessProbe) waitReady(t *testing.T, limit time.Duration) readinessResult {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Fatalf("/readyz not 200 at the tip within %v (503 %d times, last reasons %q)", limit, p.res.unready, p.res.lastReasons)
	}
	if !p.res.ready {
		t.Fatalf("/readyz probe ended without a 200 at the tip (503 %d times, last reasons %q)", p.res.unready, p.res.lastReasons)
	}
	return p.res
}
