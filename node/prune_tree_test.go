package node

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// TestPruneStateTree: a node that prunes its blocks prunes the state tree with them, keeping
// the tree of every height a held block anchors a proof of; a proof before that is answered 410
// with the earliest provable height, and one from it on is still served.
func TestPruneStateTree(t *testing.T) {
	c := newSyncChain(t)
	n := c.pruningNode(t)
	c.grow(t, n, 30, 2)
	roots := map[uint64]state.Hash{}
	for h := uint64(1); h <= 30; h++ {
		hdr, err := n.blocks.Header(h)
		if err != nil {
			t.Fatal(err)
		}
		roots[h-1] = hdr.Header.StateRoot // the state after block h-1
	}
	if e := n.st.TreeEarliest(); e != 0 {
		t.Fatalf("tree earliest %d before pruning", e)
	}
	n.cfg.Storage.KeepBlocks = 5
	for range 3 {
		n.pruneBlocks(30)
	}
	if e := n.blocks.Earliest(); e != 26 {
		t.Fatalf("earliest block %d, want 26", e)
	}
	if e := n.st.TreeEarliest(); e != 25 {
		t.Fatalf("tree earliest %d, want 25 (block 26 anchors the proofs of the state after 25)", e)
	}
	if got := counterValueOf(t, n.snaps.treePruned); got <= 0 {
		t.Errorf("guild_state_tree_pruned_records_total %v, want some", got)
	}
	if got := gaugeValue(t, n, "guild_state_tree_earliest_height"); got != 25 {
		t.Errorf("guild_state_tree_earliest_height %v, want 25", got)
	}
	key, err := state.StateKey(state.KindGovernance)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.st.ProveAt(20, roots[20], key); !errors.Is(err, state.ErrPruned) {
		t.Fatalf("proof after block 20: %v, want ErrPruned", err)
	}
	for h := uint64(25); h < 29; h++ {
		p, err := n.st.ProveAt(h, roots[h], key)
		if err != nil {
			t.Fatalf("proof after block %d: %v", h, err)
		}
		if err := p.Verify(roots[h]); err != nil || !p.Present {
			t.Fatalf("proof after block %d: present=%v %v", h, p.Present, err)
		}
	}
	get := func(height string) (int, api.ErrorResponse) {
		rec := httptest.NewRecorder()
		n.apiHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/proofs/state/governance?height="+height, nil))
		var e api.ErrorResponse
		if rec.Code != http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
			}
		}
		return rec.Code, e
	}
	if code, e := get("24"); code != http.StatusGone || e.Code != api.CodePruned || !strings.Contains(e.Error, "earliest provable height is 25") {
		t.Fatalf("proof after pruned block 24: %d %+v, want 410 pruned", code, e)
	}
	if code, e := get("25"); code != http.StatusOK {
		t.Fatalf("proof after block 25: %d %+v", code, e)
	}
	if got := n.health.storeErrors.Load(); got != 0 {
		t.Fatalf("%d store faults: a proof of a pruned height is no fault of the store", got)
	}
}
