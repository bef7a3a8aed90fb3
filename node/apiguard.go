package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// The checks every API request passes before its handler, so that the handlers see only requests
// they can serve and every refusal has the API's JSON error shape: 404 and 405 (with Allow) for a
// path or method the routes do not know, 415 for a body that is not JSON, 413 for a body over
// what the endpoint takes.

// Request body limits by route: what the largest valid request takes, in hex inside JSON.
const (
	submitBodyLimit   = 2*state.MaxTxBytes + 1024
	batchBodyLimit    = api.MaxSubmitBatch*(2*state.MaxTxBytes+4) + 1024
	evidenceBodyLimit = 2*consensus.MaxEvidenceBytes + 1024
	defaultBodyLimit  = 64 << 10
)

var bodyLimits = map[string]int64{
	"POST /v1/txs":       submitBodyLimit,
	"POST /v1/txs/batch": batchBodyLimit,
	"POST /v1/evidence":  evidenceBodyLimit,
	"POST /v1/private":   privateBodyLimit,
}

// bodyTypes are the media types a route's body may have; a route not listed takes JSON.
var bodyTypes = map[string][]string{
	"POST /v1/txs/batch": {"application/json", contentCBOR},
}

// guardRoutes wraps mux with those checks.
func guardRoutes(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern == "" {
			// No route: the mux's own answer is a plain-text 404, or 405 with Allow when the path
			// exists for other methods. Keep its status and Allow, in JSON.
			rec := &statusRecorder{header: http.Header{}}
			h.ServeHTTP(rec, r)
			if rec.status == http.StatusMethodNotAllowed {
				allow := rec.header.Get("Allow")
				w.Header().Set("Allow", allow)
				writeError(w, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed,
					fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, r.URL.Path, allow))
				return
			}
			writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
			return
		}
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			if !readBody(w, r, pattern) {
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// readBody checks the body's type and reads it whole, within the route's limit, in place of
// r.Body; it answers 415, 413 or 400 and returns false when it cannot. Before, the handlers cut
// the body at their limit and a long one failed as "unexpected end of JSON input".
func readBody(w http.ResponseWriter, r *http.Request, pattern string) bool {
	types := bodyTypes[pattern]
	if types == nil {
		types = []string{"application/json"}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !containsFold(types, mt) {
		got := r.Header.Get("Content-Type")
		if got == "" {
			got = "none"
		}
		writeError(w, http.StatusUnsupportedMediaType, api.CodeUnsupportedMediaType,
			fmt.Sprintf("Content-Type %s: %s takes %s", got, pattern, strings.Join(types, " or ")))
		return false
	}
	limit, ok := bodyLimits[pattern]
	if !ok {
		limit = defaultBodyLimit
	}
	tooLarge := func() {
		writeError(w, http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge,
			fmt.Sprintf("request body over %d bytes, the most %s takes", limit, pattern))
	}
	if r.ContentLength > limit {
		tooLarge()
		return false
	}
	body, err := readAllSized(http.MaxBytesReader(w, r.Body, limit), r.ContentLength)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		tooLarge()
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "reading body: "+err.Error())
		return false
	}
	r.Body = &readBodyBytes{Reader: bytes.NewReader(body), b: body}
	return true
}

// readBodyBytes is a body readBody read already: handlers take its bytes (bodyBytes) instead of
// reading and copying them again.
type readBodyBytes struct {
	*bytes.Reader
	b []byte
}

func (*readBodyBytes) Close() error { return nil }

// bodyBytes is the request's body, at most limit bytes (more is an error): the bytes readBody
// read, when it did, else read now.
func bodyBytes(r *http.Request, limit int64) ([]byte, error) {
	if rb, ok := r.Body.(*readBodyBytes); ok && rb.Reader.Size() == int64(rb.Reader.Len()) {
		rb.Reader.Reset(nil) // read: as io.ReadAll would leave it
		return rb.b[:min(int64(len(rb.b)), limit)], nil
	}
	return io.ReadAll(io.LimitReader(r.Body, limit))
}

// readAllSized is io.ReadAll with room for size bytes (the request's Content-Length, -1 when
// unknown) from the start: a batch of transactions is read without growing and copying its
// buffer a dozen times.
func readAllSized(r io.Reader, size int64) ([]byte, error) {
	if size < 0 || size > 64<<20 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, size+1) // +1: EOF is seen without growing the buffer
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // more than announced: grow as io.ReadAll does
		}
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// statusRecorder keeps the status and header of the mux's own 404 or 405; the body is dropped.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(b), nil
}
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}
