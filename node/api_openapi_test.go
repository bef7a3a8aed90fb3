package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/fxamacker/cbor/v2"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/paths"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// The contract test: node/openapi.json is the written contract of the HTTP API. These tests run a
// real node and check every answer it gives, errors included, against the document with
// libopenapi-validator, so that neither can change without the other.

// offContract are the mux patterns deliberately left out of the document: the profiler's, off
// unless [api] pprof is set (or on the admin listener), and the admin listener's own operator
// routes (guild node backup's checkpoint), which exist only there.
var offContract = []string{"/debug/pprof/", "POST /v1/admin/"}

// contract checks exchanges with a node against the document and records which operations
// and statuses were seen.
type contract struct {
	t     *testing.T
	base  string
	http  *http.Client
	v     validator.Validator
	model *v3.Document
	opts  *config.ValidationOptions
	sv    schema_validation.SchemaValidator
	raw   map[string]any // the document as plain JSON, for its x- extensions

	mu      sync.Mutex
	covered map[string]map[string]bool // "GET /v1/txs/{hash}" -> answers seen: "200", "400 bad_request"
}

func loadContract(t *testing.T) (libopenapi.Document, *v3.Document) {
	t.Helper()
	doc, err := libopenapi.NewDocument(openAPIDoc)
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("openapi.json: building the model: %v", err)
	}
	return doc, &m.Model
}

func newContract(t *testing.T, addr string) *contract {
	t.Helper()
	doc, model := loadContract(t)
	// Formats too: a time that is not RFC 3339 breaks the document.
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document:\n%s", describe(verrs))
	}
	var raw map[string]any
	if err := json.Unmarshal(openAPIDoc, &raw); err != nil {
		t.Fatal(err)
	}
	return &contract{
		t: t, base: "http://" + addr, http: &http.Client{Timeout: 20 * time.Second},
		v: v, model: model, opts: config.NewValidationOptions(), sv: schema_validation.NewSchemaValidator(config.WithFormatAssertions()),
		raw: raw, covered: map[string]map[string]bool{},
	}
}

func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "  - %s: %s\n", e.Message, e.Reason)
		for _, f := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "      %s: %s\n", cmpOr(f.FieldPath, "$"), f.Reason)
		}
	}
	return b.String()
}

// exchange is one request with what the document and the node must make of it.
type exchange struct {
	method, path string
	body         string // JSON, or anything for the malformed cases
	header       http.Header
	want         []int // acceptable statuses; the first if only one
	// docRejects: the document itself says the request is invalid (a pattern, a bound, an enum).
	// Otherwise the request must pass the document's checks, even when the node refuses it.
	docRejects bool
}

func (c *contract) request(ctx context.Context, x exchange) *http.Request {
	var body io.Reader
	if x.body != "" {
		body = strings.NewReader(x.body)
	}
	req, err := http.NewRequestWithContext(ctx, x.method, c.base+x.path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if x.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range x.header {
		req.Header[k] = vs
	}
	return req
}

// do sends x, checks the status, and validates the request and the response against the
// document. It returns the response body.
func (c *contract) do(x exchange) []byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.http.Do(c.request(ctx, x))
	if err != nil {
		c.t.Fatalf("%s %s: %v", x.method, x.path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatalf("%s %s: reading the answer: %v", x.method, x.path, err)
	}
	if !slices.Contains(x.want, resp.StatusCode) {
		c.t.Errorf("%s %s: status %d, want %v: %s", x.method, x.path, resp.StatusCode, x.want, body)
	}
	c.check(ctx, x, resp, body)
	return body
}

// check validates one exchange whose answer (resp, with its body read into body) came back.
func (c *contract) check(ctx context.Context, x exchange, resp *http.Response, body []byte) {
	c.t.Helper()
	req := c.request(ctx, x)
	item, _, tmpl := paths.FindPath(req, c.model, c.opts)
	if item == nil {
		c.t.Errorf("%s %s: no path of the document matches", x.method, x.path)
		return
	}
	if ok, errs := c.v.ValidateHttpRequestSync(c.request(ctx, x)); ok == x.docRejects {
		if x.docRejects {
			c.t.Errorf("%s %s: the document accepts a request it should refuse", x.method, x.path)
		} else {
			c.t.Errorf("%s %s: the request breaks the document:\n%s", x.method, x.path, describe(errs))
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := c.v.ValidateHttpResponse(c.request(ctx, x), resp); !ok {
		c.t.Errorf("%s %s: the %d answer breaks the document:\n%s  body: %.400s", x.method, x.path, resp.StatusCode, describe(errs), body)
	}
	c.cover(x.method+" "+tmpl, resp.StatusCode, body)
}

// cover records an answer of op: its status, with its error code if it has one.
func (c *contract) cover(op string, status int, body []byte) {
	answer := strconv.Itoa(status)
	var e struct{ Code string }
	if json.Unmarshal(body, &e) == nil && e.Code != "" {
		answer += " " + e.Code
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.covered[op] == nil {
		c.covered[op] = map[string]bool{}
	}
	c.covered[op][answer] = true
}

// schema validates v against the component schema name.
func (c *contract) schema(what, name string, data []byte) {
	c.t.Helper()
	sp := c.model.Components.Schemas.GetOrZero(name)
	if sp == nil {
		c.t.Fatalf("%s: no schema %s in the document", what, name)
	}
	if ok, errs := c.sv.ValidateSchemaBytesWithVersion(sp.Schema(), data, 3.1); !ok {
		c.t.Errorf("%s: breaks schema %s:\n%s  data: %.400s", what, name, describe(errs), data)
	}
}

// unrouted checks the answer to a request no operation of the document takes, which the
// document describes in words: status, a JSON Error with code, and for 405 the Allow header.
// label names the case in the report.
func (c *contract) unrouted(label, method, path string, status int, code string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status {
		c.t.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, status, body)
	}
	if allow := resp.Header.Get("Allow"); (status == http.StatusMethodNotAllowed) != (allow != "") {
		c.t.Errorf("%s %s: %d with Allow %q", method, path, resp.StatusCode, allow)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		c.t.Errorf("%s %s: content type %q, want application/json", method, path, resp.Header.Get("Content-Type"))
	}
	c.schema(method+" "+path, "Error", body)
	var e api.ErrorResponse
	if err := json.Unmarshal(body, &e); err != nil || e.Code != code {
		c.t.Errorf("%s %s: code %q, want %s", method, path, e.Code, code)
	}
	c.cover("("+label+") "+method+" "+path, resp.StatusCode, body)
}

// operations lists the document's operations as "METHOD /path".
func (c *contract) operations() []string {
	var out []string
	for p, item := range c.model.Paths.PathItems.FromOldest() {
		for m := range item.GetOperations().FromOldest() {
			out = append(out, strings.ToUpper(m)+" "+p)
		}
	}
	sort.Strings(out)
	return out
}

func (c *contract) report() {
	c.t.Helper()
	var lines []string
	for op, answers := range c.covered {
		lines = append(lines, fmt.Sprintf("%-36s %s", op, strings.Join(slices.Sorted(maps.Keys(answers)), ", ")))
	}
	sort.Strings(lines)
	c.t.Logf("endpoints checked against openapi.json (operation: answers seen, with their error codes):\n%s", strings.Join(lines, "\n"))
	for _, op := range c.operations() {
		ok := false
		for answer := range c.covered[op] {
			ok = ok || answer[0] == '2'
		}
		if !ok {
			c.t.Errorf("%s is documented but no successful answer of it was checked", op)
		}
	}
}

// muxRoutes reads the patterns the package registers on its mux: the first argument of every
// HandleFunc and Handle call in its non-test files. A pattern that is not a string literal fails
// the test, so that the scan cannot miss a route.
func muxRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(nd ast.Node) bool {
			call, ok := nd.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle" {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: a route whose pattern is not a string literal: the contract test cannot see it", fset.Position(call.Pos()))
				return true
			}
			p, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
			return true
		})
	}
	sort.Strings(out)
	return out
}

// Every route the node's mux serves is an operation of the document, and every operation of the
// document is a route: no endpoint exists unwritten, none is written that does not exist.
func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	_, model := loadContract(t)
	c := &contract{model: model}
	documented := c.operations()
	var served []string
	for _, p := range muxRoutes(t) {
		if slices.ContainsFunc(offContract, func(prefix string) bool { return strings.HasPrefix(p, prefix) }) {
			continue
		}
		if !strings.Contains(p, " ") {
			t.Errorf("route %q has no method: give it one and document it", p)
			continue
		}
		served = append(served, p)
	}
	for _, p := range served {
		if !slices.Contains(documented, p) {
			t.Errorf("route %q is served but not in openapi.json", p)
		}
	}
	for _, op := range documented {
		if !slices.Contains(served, op) {
			t.Errorf("operation %q is in openapi.json but the node does not serve it", op)
		}
	}
	if len(served) < 25 {
		t.Errorf("found only %d routes: is the scan of the mux registrations broken?", len(served))
	}
}

// A real node's answers to every operation of the document, good requests and bad, match the
// document: statuses, content types and bodies (every field's type, pattern and enum, no field
// left undocumented). Event stream data is checked against the schemas the document names.
func TestOpenAPIContract(t *testing.T) {
	// A bare p2p host as an observer, so that GET /v1/peers has someone to show.
	_, obsKey, _ := ed25519.GenerateKey(rand.Reader)
	obsID, err := p2p.PeerIDFromKey(obsKey)
	if err != nil {
		t.Fatal(err)
	}
	home, key := memberHome(t, "memdb", func(cfg *Config) {
		cfg.API.MaxEventSubscribers = 1
		cfg.P2P.Observers = []string{obsID}
		cfg.Private.Member = "acme" // the solo validator is not named like the member
	})
	boltKey := addMember(t, home, "bolt")
	n, cl, _ := runNode(t, home)
	c := newContract(t, n.APIAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	chainID := n.chainID
	me := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	var other state.Address
	other[0] = 42
	doc := sha256.Sum256([]byte("contract"))
	secret := []byte("open sesame")
	lock := state.Hash(sha256.Sum256(secret))
	newVal, _, _ := ed25519.GenerateKey(rand.Reader)
	far := n.executedHeight() + 1000

	// A little of every kind of state.
	bodies := []state.TxBody{
		{AssetCreate: &state.AssetCreate{Symbol: "GLD", Name: "Gold", Decimals: 2, MaxSupply: 1000}},
		{AssetMint: &state.AssetMint{Symbol: "GLD", To: me, Amount: 100}},
		{ItemRegister: &state.ItemRegister{ID: "diamond-1", MetadataHash: doc}},
		{ItemTransfer: &state.ItemTransfer{ID: "diamond-1", To: other}},
		{IdentityRegister: &state.IdentityRegister{ID: "acme-org", Kind: state.KindOrganization, Name: "Acme",
			Keys: [][]byte{key.Public().(ed25519.PublicKey)}}},
		{IdentityRegister: &state.IdentityRegister{ID: "dana", Kind: state.KindPerson}},
		{ClaimIssue: &state.ClaimIssue{ID: "kyc-1", Issuer: "acme-org", Subject: "dana", Schema: "kyc/v1", ContentHash: doc}},
		{ClaimIssue: &state.ClaimIssue{ID: "kyc-2", Issuer: "acme-org", Subject: "dana", Schema: "kyc/v1", ContentHash: doc}},
		{ClaimRevoke: &state.ClaimRevoke{ID: "kyc-2"}},
		{NotaryAnchor: &state.NotaryAnchor{Hash: doc}},
		{EscrowCreate: &state.EscrowCreate{ID: "deal-1", Beneficiary: other, Amount: 50, HashLock: &lock, Deadline: far}},
		{EscrowRelease: &state.EscrowRelease{ID: "deal-1", Preimage: secret}},
		{BallotCreate: &state.BallotCreate{ID: "vote-1", Title: "Venue", Options: []string{"Lisbon", "Oslo"},
			Eligible: []string{"acme-org", "dana"}, Closes: far}},
		{BallotVote: &state.BallotVote{ID: "vote-1", Identity: "acme-org", Option: 1}},
		{GovPropose: &state.GovPropose{ID: "p-val", EffectiveHeight: far,
			SetValidator: &state.Validator{Name: "newco", PubKey: newVal, PeerID: "12D3KooWnewco", Power: 2}}},
		{GovPropose: &state.GovPropose{ID: "p-param", SetParam: &state.Param{Name: state.ParamMaxBlockTxs, Value: 500}}},
		{GovPropose: &state.GovPropose{ID: "p-upgrade", Upgrade: &state.Upgrade{Name: "v2", Version: 2, Height: far,
			Info: "https://example.org/guild/v2"}}},
	}
	commitAll(t, ctx, cl, chainID, key, 0, bodies...)
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	noop := func(string, []byte) (p2p.Verdict, any) { return p2p.Ignore, nil }
	obs, err := p2p.New(ctx, p2p.Config{Key: obsKey, ChainID: chainID, Bootstrap: st.P2PAddrs,
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, ValidateTxs: noop, ValidateConsensus: noop})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	nonce := uint64(len(bodies))
	ev := doublePrepare(chainID, n.valKey, 0, n.executedHeight(), 1, "contract")
	evHex := hex.EncodeToString(encodeEvidence(t, ev))

	// Transactions.
	tx := signedRaw(t, chainID, key, nonce, state.TxBody{Transfer: &state.Transfer{To: other, Amount: 1}})
	var sub api.SubmitTxResponse
	if err := json.Unmarshal(c.do(exchange{method: "POST", path: "/v1/txs", body: `{"tx":"` + hex.EncodeToString(tx) + `"}`, want: []int{202}}), &sub); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.WaitTx(ctx, sub.Hash); err != nil {
		t.Fatal(err)
	}
	nonce++
	wrongChain := signedRaw(t, "another-chain", key, nonce, state.TxBody{Transfer: &state.Transfer{To: other, Amount: 1}})
	c.do(exchange{method: "POST", path: "/v1/txs", body: `{"tx":"` + hex.EncodeToString(wrongChain) + `"}`, want: []int{400}})
	// Each refusal with its code: the document lists the codes each answer may carry.
	used := signedRaw(t, chainID, key, 0, state.TxBody{Transfer: &state.Transfer{To: other, Amount: 1}})
	ahead := signedRaw(t, chainID, key, nonce+1_000_000, state.TxBody{Transfer: &state.Transfer{To: other, Amount: 1}})
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	forged, err := state.SignTx(state.TxBody{ChainID: chainID, From: me, Nonce: nonce, Transfer: &state.Transfer{To: other, Amount: 1}}, stranger)
	if err != nil {
		t.Fatal(err)
	}
	forgedRaw, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range [][]byte{used, ahead, forgedRaw} {
		c.do(exchange{method: "POST", path: "/v1/txs", body: `{"tx":"` + hex.EncodeToString(raw) + `"}`, want: []int{400}})
	}
	c.do(exchange{method: "POST", path: "/v1/txs", body: `{"tx":"00"}`, want: []int{400}})
	c.do(exchange{method: "POST", path: "/v1/txs", body: `{"tx":"zz"}`, want: []int{400}, docRejects: true})
	c.do(exchange{method: "POST", path: "/v1/txs", body: `{"tx":"` + strings.Repeat("00", 5000) + `"}`, want: []int{413}, docRejects: true})
	c.do(exchange{method: "POST", path: "/v1/txs", body: `{"tx":"00"}`, header: http.Header{"Content-Type": {"text/plain"}}, want: []int{415}, docRejects: true})
	c.do(exchange{method: "POST", path: "/v1/txs", body: `not json`, want: []int{400}, docRejects: true})
	batchTx := signedRaw(t, chainID, key, nonce, state.TxBody{Transfer: &state.Transfer{To: other, Amount: 1}})
	c.do(exchange{method: "POST", path: "/v1/txs/batch", want: []int{200},
		body: `{"txs":["` + hex.EncodeToString(batchTx) + `","00","` + hex.EncodeToString(wrongChain) + `"]}`})
	c.do(exchange{method: "POST", path: "/v1/txs/batch", body: `{"txs":[]}`, want: []int{400}, docRejects: true})
	cborType := http.Header{"Content-Type": {"application/cbor"}}
	binBatch, err := cbor.Marshal([][]byte{batchTx, {0x00}})
	if err != nil {
		t.Fatal(err)
	}
	c.do(exchange{method: "POST", path: "/v1/txs/batch", body: string(binBatch), header: cborType, want: []int{200}})
	c.do(exchange{method: "POST", path: "/v1/txs/batch", body: "\x80", header: cborType, want: []int{400}})             // []
	c.do(exchange{method: "POST", path: "/v1/txs/batch", body: "\x81\x40", header: cborType, want: []int{400}})         // [h'']
	c.do(exchange{method: "POST", path: "/v1/txs/batch", body: "\x9f\x41\x00\xff", header: cborType, want: []int{400}}) // indefinite
	c.do(exchange{method: "POST", path: "/v1/txs/batch", body: `{"txs":["00"]}`, header: cborType, want: []int{400}})
	c.do(exchange{method: "POST", path: "/v1/txs/batch", body: `{"txs":["0g"]}`, want: []int{400}, docRejects: true})
	c.do(exchange{method: "GET", path: "/v1/txs/" + sub.Hash, want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/txs/0x" + strings.ToUpper(sub.Hash), want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/txs/" + state.HashTx(wrongChain).String(), want: []int{200}}) // rejected here
	c.do(exchange{method: "GET", path: "/v1/txs/" + strings.Repeat("ab", 32), want: []int{404}})
	c.do(exchange{method: "GET", path: "/v1/txs/xyz", want: []int{400}, docRejects: true})

	// Accounts and blocks.
	c.do(exchange{method: "GET", path: "/v1/accounts/" + me.String(), want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/accounts/" + state.Address{7}.String(), want: []int{200}}) // never used
	badSum := me.String()[:len(me.String())-1] + map[bool]string{true: "1", false: "0"}[strings.HasSuffix(me.String(), "0")]
	c.do(exchange{method: "GET", path: "/v1/accounts/" + badSum, want: []int{400}})
	c.do(exchange{method: "GET", path: "/v1/accounts/nobody", want: []int{400}, docRejects: true})
	var page api.AccountTxsResponse
	if err := json.Unmarshal(c.do(exchange{method: "GET", path: "/v1/accounts/" + me.String() + "/txs?limit=3", want: []int{200}}), &page); err != nil || page.NextCursor == "" {
		t.Fatalf("first page of history: %+v %v", page, err)
	}
	c.do(exchange{method: "GET", path: "/v1/accounts/" + me.String() + "/txs?limit=3&cursor=" + page.NextCursor, want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/accounts/" + me.String() + "/txs", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/accounts/" + other.String() + "/txs", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/accounts/" + me.String() + "/txs?cursor=nonsense", want: []int{400}})
	c.do(exchange{method: "GET", path: "/v1/accounts/" + me.String() + "/txs?limit=0", want: []int{400}, docRejects: true})
	c.do(exchange{method: "GET", path: "/v1/accounts/" + me.String() + "/txs?limit=501", want: []int{400}, docRejects: true})
	c.do(exchange{method: "GET", path: "/v1/accounts/nobody/txs", want: []int{400}, docRejects: true})
	c.do(exchange{method: "GET", path: "/v1/blocks", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/blocks?from=2&limit=3", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/blocks?order=desc&limit=2", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/blocks?from=999999", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/blocks?order=sideways", want: []int{400}, docRejects: true})
	c.do(exchange{method: "GET", path: "/v1/blocks?from=0", want: []int{400}, docRejects: true})
	c.do(exchange{method: "GET", path: "/v1/blocks?limit=x", want: []int{400}, docRejects: true})
	c.do(exchange{method: "GET", path: "/v1/blocks/1", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/blocks/1?wait=10", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/blocks/1?txs=none", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/blocks/1?txs=some", want: []int{400}, docRejects: true})
	c.do(exchange{method: "GET", path: "/v1/blocks/999999", want: []int{404}})
	c.do(exchange{method: "GET", path: "/v1/blocks/999999?wait=1", want: []int{404}})
	c.do(exchange{method: "GET", path: "/v1/blocks/0", want: []int{400}, docRejects: true})
	c.do(exchange{method: "GET", path: "/v1/blocks/abc", want: []int{400}, docRejects: true})
	c.do(exchange{method: "GET", path: "/v1/blocks/1?wait=-1", want: []int{400}, docRejects: true})

	// Evidence, committed, and its block.
	c.do(exchange{method: "POST", path: "/v1/evidence", body: `{"evidence":"` + evHex + `"}`, want: []int{202}})
	c.do(exchange{method: "POST", path: "/v1/evidence", body: `{"evidence":"` + evHex + `"}`, want: []int{200}})
	c.do(exchange{method: "POST", path: "/v1/evidence", body: `{"evidence":"00"}`, want: []int{400}})
	c.do(exchange{method: "POST", path: "/v1/evidence", body: `{"evidence":"xx"}`, want: []int{400}, docRejects: true})
	c.do(exchange{method: "POST", path: "/v1/evidence", body: `{"evidence":"` + strings.Repeat("00", 1500) + `"}`, want: []int{413}, docRejects: true})
	c.do(exchange{method: "POST", path: "/v1/evidence", body: `{"evidence":"00"}`, header: http.Header{"Content-Type": {"text/plain"}}, want: []int{415}, docRejects: true})
	c.do(exchange{method: "POST", path: "/v1/txs/batch", body: `{"txs":["00"]}`, header: http.Header{"Content-Type": {"application/xml"}}, want: []int{415}, docRejects: true})
	var list api.EvidenceListResponse
	for len(list.Evidence) == 0 {
		var err error
		if list, err = cl.Evidence(ctx); err != nil {
			t.Fatal(err)
		}
		if len(list.Evidence) == 0 {
			if _, err := cl.BlockWait(ctx, n.executedHeight()+1, 10*time.Second); err != nil {
				t.Fatalf("evidence never committed: %v", err)
			}
		}
	}
	c.do(exchange{method: "GET", path: "/v1/evidence", want: []int{200}})
	c.do(exchange{method: "GET", path: fmt.Sprintf("/v1/blocks/%d", list.Evidence[0].Included), want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/offences", want: []int{200}})

	// State.
	unknownHash := strings.Repeat("cd", 32)
	for _, x := range []exchange{
		{path: "/v1/assets/GLD", want: []int{200}},
		{path: "/v1/assets/ZZZ", want: []int{404}},
		{path: "/v1/assets/gld", want: []int{400}, docRejects: true},
		{path: "/v1/items/diamond-1", want: []int{200}},
		{path: "/v1/items/nothing", want: []int{404}},
		{path: "/v1/items/bad*id", want: []int{400}, docRejects: true},
		{path: "/v1/identities/acme-org", want: []int{200}},
		{path: "/v1/identities/dana", want: []int{200}},
		{path: "/v1/identities/nobody", want: []int{404}},
		{path: "/v1/identities/bad*id", want: []int{400}, docRejects: true},
		{path: "/v1/claims/kyc-1", want: []int{200}},
		{path: "/v1/claims/kyc-2", want: []int{200}},
		{path: "/v1/claims/kyc-9", want: []int{404}},
		{path: "/v1/claims/bad*id", want: []int{400}, docRejects: true},
		{path: "/v1/notary/" + hex.EncodeToString(doc[:]), want: []int{200}},
		{path: "/v1/notary/" + unknownHash, want: []int{404}},
		{path: "/v1/notary/xyz", want: []int{400}, docRejects: true},
		{path: "/v1/escrows/deal-1", want: []int{200}},
		{path: "/v1/escrows/deal-9", want: []int{404}},
		{path: "/v1/escrows/bad*id", want: []int{400}, docRejects: true},
		{path: "/v1/ballots/vote-1", want: []int{200}},
		{path: "/v1/ballots/vote-9", want: []int{404}},
		{path: "/v1/ballots/bad*id", want: []int{400}, docRejects: true},
		{path: "/v1/proposals", want: []int{200}},
		{path: "/v1/proposals?status=open", want: []int{200}},
		{path: "/v1/proposals?status=bogus", want: []int{400}, docRejects: true},
		{path: "/v1/proposals/p-val", want: []int{200}},
		{path: "/v1/proposals/p-param", want: []int{200}},
		{path: "/v1/proposals/p-9", want: []int{404}},
		{path: "/v1/proposals/bad*id", want: []int{400}, docRejects: true},
		{path: "/v1/validators", want: []int{200}},
		{path: "/v1/upgrades", want: []int{200}},
		{path: "/v1/members", want: []int{200}},
		{path: "/v1/params", want: []int{200}},
		// Proofs to carry away (issue 12).
		{path: "/v1/proofs/state/claim/kyc-2", want: []int{200}},
		{path: "/v1/proofs/state/claim/kyc-9", want: []int{200}}, // proven absent
		{path: "/v1/proofs/state/notary/" + hex.EncodeToString(doc[:]) + "?height=1", want: []int{200}},
		{path: "/v1/proofs/state/balance/" + me.String() + "/GLD", want: []int{200}},
		{path: "/v1/proofs/state/governance", want: []int{200}},
		{path: "/v1/proofs/state/nonsense/x", want: []int{400}},
		{path: "/v1/proofs/state/balance/nobody/GLD", want: []int{400}},
		{path: "/v1/proofs/state/governance?height=x", want: []int{400}, docRejects: true},
		{path: "/v1/proofs/state/claim/kyc-2?height=99999999", want: []int{404}},
		{path: "/v1/proofs/tx/" + sub.Hash, want: []int{200}},
		{path: "/v1/proofs/tx/" + unknownHash, want: []int{404}},
		{path: "/v1/proofs/tx/xyz", want: []int{400}, docRejects: true},
		// The node.
		{path: "/v1/status", want: []int{200}},
		{path: "/healthz", want: []int{200}},
		{path: "/health", want: []int{200}},
		{path: "/readyz", want: []int{200, 503}},
		{path: "/metrics", want: []int{200}},
	} {
		x.method = "GET"
		c.do(x)
	}
	// The observer, once scored, with every field of a peer.
	waitUntil(t, "the observer is connected and scored", 20*time.Second, func() bool {
		ps, err := cl.Peers(ctx)
		return err == nil && len(ps.Peers) == 1 && ps.Peers[0].Score != nil
	})
	c.do(exchange{method: "GET", path: "/v1/peers", want: []int{200}})
	if served := c.do(exchange{method: "GET", path: "/v1/openapi.json", want: []int{200}}); !bytes.Equal(served, openAPIDoc) {
		t.Errorf("GET /v1/openapi.json is not the document in the repository")
	}

	// The event stream: its history from block 1, each event's data against the schema the
	// document names for its kind; a second subscriber is one too many (the limit is 1).
	c.do(exchange{method: "GET", path: "/v1/events?kinds=bogus", want: []int{400}, docRejects: true})
	c.do(exchange{method: "GET", path: "/v1/events?from=1-0&from_height=2", want: []int{400}})
	c.do(exchange{method: "GET", path: "/v1/events?nonsense=1", want: []int{400}})
	c.do(exchange{method: "GET", path: "/v1/events?from=x", want: []int{400}, docRejects: true})
	c.events(ctx, exchange{method: "GET", path: "/v1/events?from_height=1", want: []int{200}},
		[]string{api.EventBlock, api.EventTx, api.EventGovernance, api.EventEvidence})

	c.private(ctx, cl, chainID, key, boltKey)

	// What no operation takes.
	c.unrouted("no such path", "GET", "/v1/nothing-here", http.StatusNotFound, api.CodeNotFound)
	c.unrouted("wrong method", "POST", "/v1/status", http.StatusMethodNotAllowed, api.CodeMethodNotAllowed)
	c.unrouted("wrong method", "DELETE", "/v1/blocks/1", http.StatusMethodNotAllowed, api.CodeMethodNotAllowed)

	c.report()
}

// events reads the stream of x until it has seen an event of each of kinds, checking each
// event's data, then checks that another subscriber is refused while this one is connected.
func (c *contract) events(ctx context.Context, x exchange, kinds []string) {
	c.t.Helper()
	schemas := map[string]string{}
	media := c.raw["paths"].(map[string]any)["/v1/events"].(map[string]any)["get"].(map[string]any)["responses"].(map[string]any)["200"].(map[string]any)["content"].(map[string]any)["text/event-stream"].(map[string]any)
	for kind, ref := range media["x-event-data"].(map[string]any) {
		schemas[kind] = strings.TrimPrefix(ref.(string), "#/components/schemas/")
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.http.Do(c.request(sctx, x))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("%s %s: status %d", x.method, x.path, resp.StatusCode)
	}
	var head bytes.Buffer
	rd := bufio.NewReader(io.TeeReader(resp.Body, &head))
	seen := map[string]int{}
	var id, kind, data string
	for len(seen) < len(kinds) {
		line, err := rd.ReadString('\n')
		if err != nil {
			c.t.Fatalf("event stream ended after %v: %v", seen, err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if kind != "" {
				name, ok := schemas[kind]
				if !ok {
					c.t.Errorf("event %s: kind %q has no schema in the document", id, kind)
				} else {
					c.schema("event "+id+" ("+kind+")", name, []byte(data))
				}
				seen[kind]++
			}
			id, kind, data = "", "", ""
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
			if _, err := api.ParseEventID(id); err != nil {
				c.t.Errorf("event ID %q: %v", id, err)
			}
		case strings.HasPrefix(line, "event: "):
			kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	c.t.Logf("event stream: checked %v", seen)
	// The document has nothing to say of the stream's body but its media type: validate the
	// answer with what was read of it.
	c.check(ctx, x, resp, head.Bytes())
	c.do(exchange{method: "GET", path: "/v1/events", want: []int{503}})
}
