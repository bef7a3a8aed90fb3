package node

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/guild-ledger/guild/node/api"
)

type guardCase struct {
	name        string
	method      string
	path        string
	contentType string
	body        string
	chunked     bool // send the body without a Content-Length
	status      int
	code        string
	msg         string // in the error message
	allow       string // the Allow header, for 405
}

func checkGuard(t *testing.T, base string, tc guardCase) {
	t.Helper()
	var body io.Reader = strings.NewReader(tc.body)
	if tc.chunked {
		body = io.MultiReader(strings.NewReader(tc.body)) // unknown length: sent chunked
	}
	req, err := http.NewRequest(tc.method, base+tc.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if tc.contentType != "" {
		req.Header.Set("Content-Type", tc.contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", tc.name, err)
	}
	defer resp.Body.Close()
	var e map[string]string
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Errorf("%s: %d, body not JSON: %q", tc.name, resp.StatusCode, raw)
		return
	}
	if resp.StatusCode != tc.status || !strings.Contains(e["error"], tc.msg) || (tc.code != "" && e["code"] != tc.code) {
		t.Errorf("%s: %d %v, want %d with code %q and %q", tc.name, resp.StatusCode, e, tc.status, tc.code, tc.msg)
	}
	if tc.allow != "" && resp.Header.Get("Allow") != tc.allow {
		t.Errorf("%s: Allow %q, want %q", tc.name, resp.Header.Get("Allow"), tc.allow)
	}
}

// Requests the routes cannot serve are refused before any handler, each with its own status and
// the API's JSON error shape.
func TestAPIGuardRefusals(t *testing.T) {
	n, _, _ := startSolo(t)
	base := "http://" + n.APIAddr()
	bigTx := `{"tx": "` + strings.Repeat("ab", 6000) + `"}` // 12 KB: over one transaction's body
	for _, tc := range []guardCase{
		{name: "body over the limit", method: "POST", path: "/v1/txs", contentType: "application/json", body: bigTx,
			status: 413, code: api.CodeBodyTooLarge, msg: "request body over 9216 bytes"},
		{name: "body over the limit, chunked", method: "POST", path: "/v1/txs", contentType: "application/json", body: bigTx, chunked: true,
			status: 413, code: api.CodeBodyTooLarge, msg: "request body over 9216 bytes"},
		{name: "wrong method", method: "GET", path: "/v1/txs", status: 405, code: api.CodeMethodNotAllowed,
			msg: "method GET is not allowed on /v1/txs", allow: "POST"},
		{name: "wrong method on a read", method: "DELETE", path: "/v1/status", status: 405, code: api.CodeMethodNotAllowed,
			msg: "not allowed", allow: "GET, HEAD"},
		{name: "unknown path", method: "GET", path: "/v2/nothing", status: 404, code: api.CodeNotFound, msg: "no such endpoint: GET /v2/nothing"},
		{name: "form body", method: "POST", path: "/v1/txs", contentType: "application/x-www-form-urlencoded", body: `{"tx":"00"}`,
			status: 415, code: api.CodeUnsupportedMediaType, msg: "takes application/json"},
		{name: "no content type", method: "POST", path: "/v1/txs/batch", body: `{"txs":["00"]}`,
			status: 415, code: api.CodeUnsupportedMediaType, msg: "Content-Type none"},
		// What passes the guard reaches the handler as before.
		{name: "JSON with a charset", method: "POST", path: "/v1/txs", contentType: "application/json; charset=utf-8", body: `{"tx":"zz"}`,
			status: 400, msg: "tx must be non-empty hex"},
	} {
		checkGuard(t, base, tc)
	}
}

// Store faults and other internal errors reach the client as a generic message with a code; the
// details (paths, engine messages) go to the log at ERROR.
func TestInternalErrorsStayInTheLog(t *testing.T) {
	home, _ := soloHome(t, "memdb")
	logger, logs := newTestLogger()
	fs := &faultyStore{}
	n, _, _ := startNode(t, home, logger, func(n *Node) { fs.Store = n.blocks.db; n.blocks.db = fs })
	if code := getJSON(t, n, "/v1/blocks/1?wait=15000", nil); code != http.StatusOK {
		t.Fatalf("block 1: %d", code)
	}
	fs.failBlockReads.Store(true)
	resp, err := http.Get("http://" + n.APIAddr() + "/v1/events?from_height=1")
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := io.ReadAll(resp.Body) // the node cuts the stream off at the failed read
	resp.Body.Close()
	if !strings.Contains(string(stream), "event: cutoff") || strings.Contains(string(stream), "pebble") ||
		!strings.Contains(string(stream), storeFaultMessage) {
		t.Errorf("event stream on a damaged store: %q", stream)
	}
	for _, path := range []string{"/v1/blocks/1", "/v1/status"} {
		var e map[string]string
		code := getJSON(t, n, path, &e)
		if code != http.StatusInternalServerError || e["error"] != storeFaultMessage || e["code"] != api.CodeStoreFault {
			t.Errorf("GET %s on a damaged store: %d %v, want 500 %q with code %s", path, code, e, storeFaultMessage, api.CodeStoreFault)
		}
	}
	if line := logs.lineWith("level=ERROR", "store failure"); !strings.Contains(line, "checksum mismatch") {
		t.Errorf("store failure line: %q", line)
	}

	rec := httptest.NewRecorder()
	n.writeInternalError(rec, "testing the answer", errors.New("node: internal detail 0xdeadbeef"))
	var e map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "0xdeadbeef") || e["code"] != api.CodeInternal {
		t.Errorf("internal error answered %d %s", rec.Code, rec.Body.String())
	}
	if line := logs.lineWith("level=ERROR", "testing the answer"); !strings.Contains(line, "0xdeadbeef") {
		t.Errorf("internal error not logged with its detail: %q", line)
	}
}
