package testnet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node/api"
)

// tourStepLimit is how long the chain may take to move on after each step of the tour; a
// healthy 4-node testnet needs a few seconds (a view change for a dead leader, a block sync).
// tourDwell is how long the tour stays in each state, as someone typing the commands does: the
// stall needed a killed node to stay down long enough for its peers' retransmissions to its old
// connection to back off, so that the connection outlived the restart.
const (
	tourStepLimit = 30 * time.Second
	tourDwell     = 5 * time.Second
)

// The README's tour, under load, twice in a row: kill node 2, restart it, kill and wipe node 3,
// restart it. After every step every running node's height passes the chain's tip at the time of
// the step within tourStepLimit, and at the end every node holds the same block at every height.
//
// It is the regression test for issue #9: a killed node's stale connection outlived its restart,
// gossipsub on the survivors forgot the restarted node's subscriptions while it stayed connected,
// and they never sent it another message; with node 3 down next, no quorum could hear each other
// and the chain stalled for good. Built with GUILD_TEST_LDFLAGS="-X
// github.com/guild-ledger/guild/p2p.linkRepair=off" it shows that stall (it fails at the first
// step that needs the restarted node).
func TestTourNoStall(t *testing.T) {
	tn := startTestnet(t, 4*time.Minute)
	ctx, dir, bin, clients := tn.ctx, tn.dir, tn.bin, tn.clients

	watch := watchProgress(ctx, clients)
	// The load runs until the tour is over (or has failed), and is stopped before the testnet.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var (
		loadRep  *LoadReport
		loadErr  error
		loadDone = make(chan struct{})
	)
	go func() {
		defer close(loadDone)
		loadRep, loadErr = RunLoad(loadCtx, LoadOptions{Dir: dir, Passphrase: testPassphrase, Rate: 300,
			Duration: 3 * time.Minute, Accounts: 16, Stragglers: time.Second})
	}()
	t.Cleanup(func() { stopLoad(); <-loadDone })
	waitHeights(t, ctx, clients, 3)

	up := []bool{true, true, true, true}
	step := func(name string, act func() error) {
		t.Helper()
		if err := act(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var live []*api.Client
		var tip uint64
		for i, c := range clients {
			if !up[i] {
				continue
			}
			live = append(live, c)
			if st, err := c.Status(ctx); err == nil {
				tip = max(tip, st.Height)
			}
		}
		start := time.Now()
		heights, err := heightsPast(ctx, live, tip, tourStepLimit)
		if err != nil {
			t.Fatalf("%s: the chain stalled: heights %v %v after the step, want all past %d: %v",
				name, heights, tourStepLimit, tip, err)
		}
		t.Logf("%-24s chain at %d; every running node past it in %v (heights %v)", name, tip,
			time.Since(start).Round(time.Millisecond), heights)
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Until(start.Add(tourDwell))):
		}
	}
	for round := 1; round <= 2; round++ {
		step(fmt.Sprintf("round %d: kill node2", round), func() error {
			_, err := Kill(dir, 2)
			up[1] = false
			return err
		})
		step(fmt.Sprintf("round %d: restart node2", round), func() error {
			_, _, err := Restart(ctx, dir, 2, bin)
			up[1] = true
			return err
		})
		step(fmt.Sprintf("round %d: kill+wipe node3", round), func() error {
			up[2] = false
			if _, err := Kill(dir, 3); err != nil {
				return err
			}
			_, _, err := Wipe(dir, 3)
			return err
		})
		step(fmt.Sprintf("round %d: restart node3", round), func() error {
			_, _, err := Restart(ctx, dir, 3, bin)
			up[2] = true
			return err
		})
	}
	stopLoad()
	<-loadDone
	if loadErr != nil && !errors.Is(loadErr, context.Canceled) {
		t.Errorf("load: %v", loadErr)
	}
	if loadRep != nil {
		t.Logf("load: submitted %d, finalized %d, %.0f tx/s", loadRep.Submitted, loadRep.Finalized, loadRep.FinalizedRate)
	}
	gap, at := watch.stop()
	t.Logf("longest time without a new block on any node: %v (after height %d)", gap.Round(time.Millisecond), at)
	// Nodes 1 and 4 ran throughout: their counters tell how often the link repair acted.
	t.Logf("links reset by node1: %.0f, node4: %.0f",
		metricValue(t, ctx, clients[0].Base(), "guild_p2p_link_resets_total"),
		metricValue(t, ctx, clients[3].Base(), "guild_p2p_link_resets_total"))

	tip := uint64(0)
	for _, h := range waitHeights(t, ctx, clients, 1) {
		tip = max(tip, h)
	}
	waitHeights(t, ctx, clients, tip)
	for h := uint64(1); h <= tip; h++ {
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
	t.Logf("all 4 nodes hold the same blocks 1..%d", tip)
}

// heightsPast waits up to limit until every client reports a height above tip, and returns the
// heights it saw last.
func heightsPast(ctx context.Context, clients []*api.Client, tip uint64, limit time.Duration) ([]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	heights := make([]uint64, len(clients))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		past := true
		for i, c := range clients {
			if st, err := c.Status(ctx); err == nil {
				heights[i] = st.Height
			}
			past = past && heights[i] > tip
		}
		if past {
			return heights, nil
		}
		select {
		case <-ctx.Done():
			return heights, ctx.Err()
		case <-tick.C:
		}
	}
}

// progressWatch records the longest time the chain's tip (the highest height any node reports)
// stood still.
type progressWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	gap    time.Duration
	at     uint64
}

func watchProgress(ctx context.Context, clients []*api.Client) *progressWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &progressWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var tip uint64
		since := time.Now()
		for {
			high := tip
			for _, c := range clients {
				if st, err := c.Status(ctx); err == nil {
					high = max(high, st.Height)
				}
			}
			now := time.Now()
			w.mu.Lock()
			if d := now.Sub(since); d > w.gap {
				w.gap, w.at = d, tip
			}
			w.mu.Unlock()
			if high > tip {
				tip, since = high, now
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *progressWatch) stop() (time.Duration, uint64) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gap, w.at
}
