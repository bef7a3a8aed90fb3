package node

import (
	"context"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
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
