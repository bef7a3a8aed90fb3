package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Codes of the "code" key of every error answer: stable, so that a client branches on them and
// not on the human message, which may change.
const (
	CodeBadRequest           = "bad_request"            // 400: malformed request or refused transaction
	CodeForbidden            = "forbidden"              // 403: the caller did not prove it may read this (a private payload)
	CodeNotFound             = "not_found"              // 404: no such record, block or endpoint
	CodeGone                 = "gone"                   // 410: purged (a private payload past its expiry)
	CodeMethodNotAllowed     = "method_not_allowed"     // 405
	CodeBodyTooLarge         = "body_too_large"         // 413
	CodeUnsupportedMediaType = "unsupported_media_type" // 415
	CodeMempoolFull          = "mempool_full"           // 503: submit again later
	CodeOverloaded           = "overloaded"             // 429 or 503: too many requests now
	CodeWrongChain           = "wrong_chain"            // 400: the transaction is for another chain
	CodeBadSignature         = "bad_signature"          // 400: signatures missing, invalid or not enough
	CodeNonceUsed            = "nonce_used"             // 400: the nonce is committed or taken by a pending transaction
	CodeNonceAhead           = "nonce_ahead"            // 400: the nonce is too far past the account's next
	CodeStoreFault           = "store_fault"            // 500: the node's storage failed; see its log
	CodeUnavailable          = "unavailable"            // 503: stopping, cancelled or not ready
	CodeTooManySubscribers   = "too_many_subscribers"   // 503: the event stream's subscriber limit
	CodeInternal             = "internal"               // 500: anything else
	CodePruned               = "pruned"                 // 410: below the node's earliest block or provable height (pruned or before state sync)
)

// ErrorResponse is the body of every 4xx and 5xx answer.
type ErrorResponse struct {
	Error string `json:"error"` // for a human
	Code  string `json:"code"`  // one of the Code* constants
}

// Error is a 4xx/5xx answer: the HTTP status, the node's code (empty from a node or proxy that
// sent none) and its explanation.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("node API: %d: %s", e.Status, e.Message) }

// ErrNotFound matches an *Error with status 404 under errors.Is.
var ErrNotFound = errors.New("node API: not found")

func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// ErrorCode is err's code if it is (or wraps) an *Error, else "".
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// errorFrom makes the *Error of an answer with status and body.
func errorFrom(status int, body []byte) *Error {
	var e ErrorResponse
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error, e.Code = strings.TrimSpace(string(body)), ""
	}
	return &Error{Status: status, Code: e.Code, Message: e.Error}
}
