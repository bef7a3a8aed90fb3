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

func TestPrintAccountHistory(t *testing.T) {
	const addr = "guild1xyz"
	pages := map[string]api.AccountTxsResponse{
		"": {Address: addr, Height: 9, NextCursor: "c1", Txs: []api.AccountTxJSON{
			{TxEventJSON: api.TxEventJSON{Height: 9, Index: 1, Hash: "h2", From: "a", Op: "transfer", Status: "committed"}, Time: "t9"}}},
		"c1": {Address: addr, Height: 9, Txs: []api.AccountTxJSON{
			{TxEventJSON: api.TxEventJSON{Height: 4, Index: 0, Hash: "h1", From: "b", Op: "escrow_release", Status: "failed", Error: "escrow closed"}, Time: "t4"}}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, ok := pages[r.URL.Query().Get("cursor")]
		if r.URL.Path != "/v1/accounts/"+addr+"/txs" || !ok || r.URL.Query().Get("limit") != "1" {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(page)
	}))
	defer srv.Close()
	client := api.NewClient(srv.URL)

	var out bytes.Buffer
	if err := printAccountHistory(context.Background(), &out, client, addr, 1, "", false, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "9/1") || !strings.Contains(lines[1], "transfer") || lines[2] != "more: --cursor c1" {
		t.Fatalf("one page:\n%s", out.String())
	}

	out.Reset()
	if err := printAccountHistory(context.Background(), &out, client, addr, 1, "", true, false); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "h2") || !strings.Contains(s, "failed: escrow closed") || strings.Contains(s, "more:") {
		t.Fatalf("all pages:\n%s", s)
	}

	out.Reset()
	if err := printAccountHistory(context.Background(), &out, client, addr, 1, "", true, true); err != nil {
		t.Fatal(err)
	}
	var back api.AccountTxsResponse
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || len(back.Txs) != 2 || back.NextCursor != "" || back.Txs[1].Hash != "h1" {
		t.Fatalf("JSON of all pages %s: %v", out.String(), err)
	}
}
