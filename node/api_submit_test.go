package node

import (
	"bytes"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/guild-ledger/guild/node/api"
)

// The batch answer written by hand is byte for byte what encoding/json writes, escapes included.
func TestWriteSubmitResultsMatchesJSON(t *testing.T) {
	for _, results := range [][]api.SubmitTxResult{
		{},
		{{Hash: strings.Repeat("ab", 32), Status: api.TxPending}},
		{{Status: api.TxRejected, Error: "state: malformed transaction: cbor: unexpected EOF", Code: api.CodeBadRequest},
			{Hash: "00", Status: api.TxBusy, Error: `node: mempool full, try again later`, Code: api.CodeMempoolFull},
			{Hash: "01", Status: api.TxRejected, Error: "chain \"x\" <&> é \u2028 \x01 \xff", Code: "c\"ode"}},
	} {
		want := httptest.NewRecorder()
		writeJSON(want, 200, api.SubmitTxsResponse{Results: results})
		got := httptest.NewRecorder()
		writeSubmitResults(got, results)
		if got.Code != 200 || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Fatalf("%d %s\nencoding/json: %s", got.Code, got.Body.Bytes(), want.Body.Bytes())
		}
		if ct := got.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
}

// readAllSized reads everything whatever the announced size, as io.ReadAll does.
func TestReadAllSized(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	for _, size := range []int64{-1, 0, 1, 9999, 10000, 10001, 1 << 30} {
		got, err := readAllSized(iotest.HalfReader(bytes.NewReader(data)), size)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: %d bytes, %v", size, len(got), err)
		}
	}
	if _, err := readAllSized(iotest.ErrReader(io.ErrUnexpectedEOF), 10); err != io.ErrUnexpectedEOF {
		t.Fatalf("error: %v", err)
	}
}
