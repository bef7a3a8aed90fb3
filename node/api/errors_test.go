package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The client hands back the status, the code and the message of an error answer, and a body
// that is not the error shape (a proxy's page) as the message with no code.
func TestClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/accounts/nope":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"state: account not found","code":"not_found"}`))
		case "/v1/txs":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"state: wrong nonce: 3, want 4","code":"nonce_used"}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("bad gateway\n"))
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL)
	ctx := context.Background()

	_, err := c.Account(ctx, "nope")
	var e *Error
	if !errors.As(err, &e) || e.Status != 404 || e.Code != CodeNotFound || e.Message != "state: account not found" ||
		!errors.Is(err, ErrNotFound) {
		t.Errorf("404: got %#v", err)
	}
	_, err = c.SubmitTx(ctx, []byte{1})
	if ErrorCode(err) != CodeNonceUsed || errors.Is(err, ErrNotFound) {
		t.Errorf("400: got %#v", err)
	}
	_, err = c.Status(ctx)
	if !errors.As(err, &e) || e.Status != 502 || e.Code != "" || e.Message != "bad gateway" {
		t.Errorf("502 from a proxy: got %#v", err)
	}
	if ErrorCode(errors.New("dial tcp: refused")) != "" {
		t.Error("ErrorCode of a transport error must be empty")
	}
}
