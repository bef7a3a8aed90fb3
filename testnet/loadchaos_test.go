package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
)

// What a chaos run needs of the load generator: following blocks past a node that stopped
// answering, and waiting out a "too far ahead" refusal instead of dropping the sender.

func TestFollowMovesPastASilentNode(t *testing.T) {
	good := http.NewServeMux()
	good.HandleFunc("GET /v1/blocks/{h}", func(w http.ResponseWriter, r *http.Request) {
		h, _ := strconv.Atoi(r.PathValue("h"))
		if h > 3 {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(api.BlockResponse{Height: uint64(h), Txs: []string{}})
	})
	srv := httptest.NewServer(good)
	defer srv.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // connection refused: a killed node

	tr := newTracker()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- follow(ctx, newAPIHTTP(1), []string{dead.URL, srv.URL}, 1, tr, 10*time.Second) }()
	for {
		tr.mu.Lock()
		n := len(tr.blocks)
		tr.mu.Unlock()
		if n == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("followed %d blocks of 3: stuck on the silent node", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("follow: %v", err)
	}
}

func TestTooFarAheadIsPushback(t *testing.T) {
	if !tooFarAhead("400 " + node.ErrNonceTooFar.Error()) {
		t.Error("the node's too-far-ahead refusal not recognised")
	}
	if tooFarAhead("state: wrong nonce") || tooFarAhead("") {
		t.Error("another refusal taken for pushback")
	}
}
