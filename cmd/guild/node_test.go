package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/guild-ledger/guild/node/api"
)

func TestPrintPeers(t *testing.T) {
	score := -12.5
	res := api.PeersResponse{Peers: []api.PeerStatus{
		{PeerID: "12D3KooWA", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, LatencyMs: 0.25, Score: &score, Role: api.PeerValidator, Name: "org-1"},
		{PeerID: "12D3KooWB", Role: api.PeerObserver},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/peers" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(res)
	}))
	defer srv.Close()

	var out bytes.Buffer
	if err := printPeers(context.Background(), &out, srv.URL, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", out.String())
	}
	for _, want := range []string{"12D3KooWA", "validator org-1", "0.25 ms", "-12.5", "/ip4/127.0.0.1/tcp/1"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	if f := strings.Fields(lines[2]); len(f) != 5 || f[1] != "observer" || f[2] != "-" || f[3] != "-" {
		t.Errorf("row for an unmeasured observer: %q", lines[2])
	}

	out.Reset()
	if err := printPeers(context.Background(), &out, srv.URL, true); err != nil {
		t.Fatal(err)
	}
	var back api.PeersResponse
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || len(back.Peers) != 2 || *back.Peers[0].Score != score {
		t.Fatalf("JSON output %s: %v", out.String(), err)
	}
}
