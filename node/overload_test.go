package node

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/guild-ledger/guild/state"
)

// A node with max_pending transactions pending, or pending ones and no block for longer than the
// lag, refuses a submission at once with 503 and Retry-After, before reading it; otherwise the
// request goes through to the ordinary checks (here: a 400 for a body that is no transaction).
func TestSubmitRefusedAtOnceWhenOverloaded(t *testing.T) {
	n := &Node{pool: NewMempool(100), metrics: newMetrics(), log: slog.New(slog.DiscardHandler)}
	n.gate.setParams(MempoolConfig{Size: 100, MaxPending: 3}, params{proposeTxs: 10, viewTimeout: time.Second})
	now := time.Now()
	n.gate.committed(now)
	post := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h := n.handleSubmit
		if path == "/v1/txs/batch" {
			h = n.handleSubmitBatch
		}
		h(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewBufferString(`{}`)))
		return rec
	}
	for i := range 2 {
		raw, h, tx := pendingFor(1, uint64(i), 0)
		if err := n.pool.Add(raw, h, tx); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/v1/txs", "/v1/txs/batch"} {
		if rec := post(p); rec.Code != http.StatusBadRequest {
			t.Fatalf("%s with 2 pending of 3: %d %s, want 400 (not refused)", p, rec.Code, rec.Body)
		}
	}
	raw, h, tx := pendingFor(1, 2, 0)
	if err := n.pool.Add(raw, h, tx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/txs", "/v1/txs/batch"} {
		if rec := post(p); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("%s with 3 pending of 3: %d %q, want 503 with Retry-After", p, rec.Code, rec.Header())
		}
	}
	// Below the mark, but pending and no block for longer than the lag (2 view timeouts).
	n.pool.Remove([]state.Hash{h})
	n.gate.committed(now.Add(-3 * time.Second))
	if rec := post("/v1/txs"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("no block for 3 s with a lag of 2 s: %d, want 503", rec.Code)
	}
	if why, err := n.gate.check(0, now); err != nil {
		t.Fatalf("nothing pending: refused (%s); an idle chain must take submissions", why)
	}
}

// Requests admitted together cannot take the mempool past max_pending: the gate's room is what
// is left, and nothing once it is reached.
func TestAdmissionRoomUnderMaxPending(t *testing.T) {
	var g admissionGate
	g.setParams(MempoolConfig{Size: 100, MaxPending: 10}, params{proposeTxs: 10, viewTimeout: time.Second})
	for pending, want := range map[int]int{0: 10, 7: 3, 10: 0, 50: 0} {
		if got := g.room(pending); got != want {
			t.Errorf("room with %d pending = %d, want %d", pending, got, want)
		}
	}
}
