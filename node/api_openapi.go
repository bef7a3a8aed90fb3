package node

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 document of the HTTP API, served verbatim at GET
// /v1/openapi.json. The contract test (api_openapi_test.go) checks every endpoint's answers
// against it, and that it names exactly the routes the mux serves.
//
//go:embed openapi.json
var openAPIDoc []byte

func handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPIDoc)
}
