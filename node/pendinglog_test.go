package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
)

// Transactions a node accepted from its API and had not seen committed are still pending after a
// restart: here they wait behind a nonce gap, so nothing but the pending log can bring them back.
// Once the gap is filled all of them commit, and the log empties.
func TestAcceptedTransactionsSurviveRestart(t *testing.T) {
	home, key := soloHome(t, "pebbledb")
	n, c, stop := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var to state.Address
	to[0] = 7
	var waiting []string
	for nonce := uint64(1); nonce <= 3; nonce++ { // nonce 0 is the gap
		resp, err := c.SubmitTx(ctx, transfer(t, n.chainID, key, nonce, to, 10))
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, resp.Hash)
	}
	if raws, err := n.pending.load(); err != nil || len(raws) != 3 {
		t.Fatalf("pending log holds %d transactions (%v), want 3", len(raws), err)
	}
	stop()

	n, c, _ = runNode(t, home)
	for _, h := range waiting {
		for {
			ts, err := c.Tx(ctx, h)
			if err == nil && ts.Status == api.TxPending {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("tx %s not pending again after the restart: %+v %v", h, ts, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Taken back before the node had peers, they are due for gossip at once (the sweep sends
	// them when a peer is there), not pendingResendAfter later.
	dueBy := time.Now().Add(10 * time.Second)
	for {
		n.pending.mu.Lock()
		due := 0
		for _, e := range n.pending.kept {
			if e.sent.IsZero() {
				due++
			}
		}
		n.pending.mu.Unlock()
		if due == len(waiting) {
			break
		}
		if time.Now().After(dueBy) {
			t.Fatalf("%d of %d transactions taken back are due for gossip, want all", due, len(waiting))
		}
		time.Sleep(20 * time.Millisecond)
	}
	gap, err := c.SubmitTx(ctx, transfer(t, n.chainID, key, 0, to, 10))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range append(waiting, gap.Hash) {
		if ts, err := c.WaitTx(ctx, h); err != nil || ts.Status != api.TxCommitted {
			t.Fatalf("tx %s: %+v %v", h, ts, err)
		}
	}
	if acc, err := c.Account(ctx, to.String()); err != nil || acc.Balance != 40 {
		t.Fatalf("recipient: %+v %v, want 40", acc, err)
	}
	for {
		raws, err := n.pending.load()
		if err != nil {
			t.Fatal(err)
		}
		if len(raws) == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("pending log still holds %d committed transactions", len(raws))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// What stays pending is gossiped again once per pendingResendAfter: a restarted node takes its
// logged transactions back before it has peers, and gossip alone would never carry them.
func TestPendingLogResendsWhatStaysPending(t *testing.T) {
	db, err := kv.Open(kv.MemDB, "", "")
	if err != nil {
		t.Fatal(err)
	}
	l := newPendingLog(db)
	a, b := []byte("tx-a"), []byte("tx-b")
	if err := l.add([]state.Hash{state.HashTx(a), state.HashTx(b)}, [][]byte{a, b}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if got := l.due(now.Add(-pendingResendAfter), now); len(got) != 0 {
		t.Fatalf("resent %d transactions just gossiped", len(got))
	}
	later := now.Add(pendingResendAfter + time.Second)
	if got := l.due(later.Add(-pendingResendAfter), later); len(got) != 2 {
		t.Fatalf("resent %d of 2 transactions pending for %v", len(got), pendingResendAfter)
	}
	if got := l.due(later.Add(-pendingResendAfter), later); len(got) != 0 {
		t.Fatalf("resent %d again at once", len(got))
	}
	if _, err := l.sweep(func(h state.Hash) bool { return h == state.HashTx(a) }); err != nil {
		t.Fatal(err)
	}
	muchLater := later.Add(pendingResendAfter + time.Second)
	if got := l.due(muchLater.Add(-pendingResendAfter), muchLater); len(got) != 1 || string(got[0]) != "tx-a" {
		t.Fatalf("after b left the mempool, resent %q", got)
	}
}

// A transaction accepted while no peer was subscribed to the transactions topic (a node just
// restarted, its links still coming up) was published to no one, and pubsub does not say so: it
// is gossiped again as soon as a peer joins, not pendingResendAfter later. Here the periodic
// resend is pushed out of the test's reach, so only the resend on the peer's arrival can bring
// the transaction to it (in chaos runs, the wait for the periodic one stranded a restarted
// validator's first transactions, and every later one of their senders, for ~10 s).
func TestPendingGossipedWhenAPeerJoins(t *testing.T) {
	home, key := soloHome(t, "memdb")
	editConfig(t, home, func(cfg *Config) { cfg.P2P.Permissioned = false }) // the peer below is bound to no validator
	n, c, _ := runNode(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var to state.Address
	to[0] = 7
	raw := transfer(t, n.chainID, key, 1, to, 10) // nonce 0 is a gap: it stays pending
	if _, err := c.SubmitTx(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if n.host.TxPeers() != 0 {
		t.Fatal("the solo node has a peer in the transactions topic already")
	}
	n.pending.mu.Lock()
	for _, e := range n.pending.kept {
		e.sent = time.Now().Add(time.Hour)
	}
	n.pending.mu.Unlock()

	_, peerKey, _ := ed25519.GenerateKey(rand.Reader)
	peer, err := p2p.New(ctx, p2p.Config{
		Key: peerKey, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: n.PeerAddrs(), ChainID: n.chainID,
		ValidateTxs:       func(string, []byte) (p2p.Verdict, any) { return p2p.Accept, nil },
		ValidateConsensus: func(string, []byte) (p2p.Verdict, any) { return p2p.Ignore, nil },
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	for {
		select {
		case m := <-peer.Txs():
			var batch [][]byte
			if err := state.Unmarshal(m.Data, &batch); err != nil {
				t.Fatalf("undecodable batch from the node: %v", err)
			}
			if slices.ContainsFunc(batch, func(b []byte) bool { return bytes.Equal(b, raw) }) {
				return
			}
		case <-ctx.Done():
			t.Fatal("the pending transaction never reached the peer that joined after it was accepted")
		}
	}
}

// What add logged is on disk when it returns, before the client hears 202: a copy of the store's
// files taken while it is still open (what a killed process leaves) holds every entry. Logged
// without a sync, pebble kept them in its own buffer, and a validator killed in a chaos run lost
// the last of its accepted transactions.
func TestPendingLogSurvivesAKill(t *testing.T) {
	dir := t.TempDir()
	db, err := kv.Open(kv.PebbleDB, dir, "blocks")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, key := soloHome(t, "memdb")
	var to state.Address
	to[0] = 7
	var hashes []state.Hash
	var raws [][]byte
	for nonce := range uint64(3) {
		raw := transfer(t, "kill-test", key, nonce, to, 10)
		hashes, raws = append(hashes, state.HashTx(raw)), append(raws, raw)
	}
	if err := newPendingLog(db).add(hashes, raws); err != nil {
		t.Fatal(err)
	}
	killed := filepath.Join(t.TempDir(), "blocks.db")
	if err := os.CopyFS(killed, os.DirFS(filepath.Join(dir, "blocks.db"))); err != nil {
		t.Fatal(err)
	}
	c, err := kv.Open(kv.PebbleDB, filepath.Dir(killed), "blocks")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := newPendingLog(c).load()
	if err != nil || len(got) != 3 {
		t.Fatalf("after a kill the pending log holds %d of 3 accepted transactions (%v)", len(got), err)
	}
}

// Each way a verified gossiped transaction stays out of the mempool has its own label of
// guild_gossip_txs_not_pooled_total.
func TestGossipNotPooledReasons(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{ErrMempoolFull, "mempool_full"},
		{fmt.Errorf("%w: %w", ErrMempoolFull, errCatchingUp), "catching_up"},
		{ErrNonceTooFar, "nonce_too_far"},
		{ErrNonceTaken, "nonce_taken"},
		{fmt.Errorf("%w: nonce 3 already used (next is 5)", state.ErrBadNonce), "nonce_used"},
		{state.ErrNoFunds, "other"},
	} {
		if got := notPooledReason(c.err); got != c.want {
			t.Errorf("%v: %q, want %q", c.err, got, c.want)
		}
	}
}
