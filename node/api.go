package node

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// maxBlockWait caps how long GET /v1/blocks/{height}?wait=MS holds a request open.
const maxBlockWait = 30 * time.Second

func (n *Node) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/txs", n.handleSubmit)
	mux.HandleFunc("POST /v1/txs/batch", n.handleSubmitBatch)
	mux.HandleFunc("GET /v1/txs/{hash}", n.handleTx)
	n.stateRoutes(mux)   // assets, items, identities, claims, ...: api_state.go
	n.privateRoutes(mux) // private payloads and encryption keys: api_private.go
	n.proofRoutes(mux)   // proofs to check offline: api_proofs.go
	mux.HandleFunc("GET /v1/accounts/{address}", n.handleAccount)
	mux.HandleFunc("GET /v1/blocks/{height}", n.handleBlock)
	n.historyRoutes(mux)
	n.eventRoutes(mux) // GET /v1/events: events.go
	mux.HandleFunc("GET /v1/status", n.handleStatus)
	mux.HandleFunc("GET /v1/evidence", n.handleEvidence)
	mux.HandleFunc("GET /v1/offences", n.handleOffences)
	mux.HandleFunc("GET /v1/peers", n.handlePeers)
	mux.HandleFunc("GET /v1/openapi.json", handleOpenAPI)
	n.healthRoutes(mux) // /healthz, /readyz and the older /health: api_health.go
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
	n.operatorRoutes(mux, false) // POST /v1/evidence and pprof, unless on the admin listener
	return guardRoutes(mux)      // JSON 404 and 405, body type and size: apiguard.go
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers an error: status, a stable code (api.Code*) for programs, msg for people.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, api.ErrorResponse{Error: msg, Code: code})
}

// handleSubmit takes {"tx": "<hex>"}; 202 once the transaction is pending, 400 with the reason if
// it is refused, 503 if the mempool is full.
func (n *Node) handleSubmit(w http.ResponseWriter, r *http.Request) {
	if n.refuseIfOverloaded(w) {
		return
	}
	body, err := bodyBytes(r, submitBodyLimit) // guardRoutes answered 413 over it
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "reading body: "+err.Error())
		return
	}
	var req api.SubmitTxRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, `body must be JSON {"tx": "<hex-encoded signed transaction>"}: `+err.Error())
		return
	}
	raw, err := hex.DecodeString(trimHex(req.Tx))
	if err != nil || len(raw) == 0 {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "tx must be non-empty hex")
		return
	}
	h, err := n.Submit(r.Context(), raw)
	switch {
	case err == nil, errors.Is(err, ErrTxKnown):
		writeJSON(w, http.StatusAccepted, api.SubmitTxResponse{Hash: h.String(), Status: api.TxPending})
	case errors.Is(err, ErrMempoolFull):
		w.Header().Set("Retry-After", retryAfterSeconds)
		writeError(w, http.StatusServiceUnavailable, api.CodeMempoolFull, err.Error())
	case isStoreFault(err): // logged and counted by checkTx
		writeError(w, http.StatusInternalServerError, api.CodeStoreFault, storeFaultMessage)
	case r.Context().Err() != nil:
		writeError(w, http.StatusServiceUnavailable, api.CodeUnavailable, "request cancelled")
	case errors.Is(err, errStopping):
		writeError(w, http.StatusServiceUnavailable, api.CodeUnavailable, err.Error())
	default:
		writeError(w, http.StatusBadRequest, txRefusalCode(err), err.Error())
	}
}

// handleSubmitBatch takes {"txs": ["<hex>", ...]}, or with Content-Type application/cbor a CBOR
// array of byte strings, each a signed transaction (at most MaxSubmitBatch), and answers 200 with
// one result per transaction: pending, rejected with the reason, or busy (try again later). The
// binary form is half the bytes and skips hex and JSON string decoding: for load generators and
// gateways that submit in bulk.
func (n *Node) handleSubmitBatch(w http.ResponseWriter, r *http.Request) {
	if n.refuseIfOverloaded(w) {
		return
	}
	body, err := bodyBytes(r, batchBodyLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "reading body: "+err.Error())
		return
	}
	var raws [][]byte
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); strings.EqualFold(mt, contentCBOR) {
		raws, err = decodeCBORBatch(body)
	} else {
		raws, err = decodeJSONBatch(body)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	hashes, errs := n.SubmitBatch(r.Context(), raws)
	if r.Context().Err() != nil {
		writeError(w, http.StatusServiceUnavailable, api.CodeUnavailable, "request cancelled")
		return
	}
	resp := api.SubmitTxsResponse{Results: make([]api.SubmitTxResult, len(raws))}
	for i, err := range errs {
		res := &resp.Results[i]
		if hashes[i] != (state.Hash{}) {
			res.Hash = hashes[i].String()
		}
		switch {
		case err == nil, errors.Is(err, ErrTxKnown):
			res.Status = api.TxPending
		case errors.Is(err, ErrMempoolFull):
			res.Status, res.Error, res.Code = api.TxBusy, err.Error(), api.CodeMempoolFull
		case isStoreFault(err): // logged and counted by checkTx
			res.Status, res.Error, res.Code = api.TxBusy, storeFaultMessage, api.CodeStoreFault
		default:
			res.Status, res.Error, res.Code = api.TxRejected, err.Error(), txRefusalCode(err)
		}
	}
	writeSubmitResults(w, resp.Results)
}

// writeSubmitResults answers 200 with results, byte for byte what writeJSON writes for an
// api.SubmitTxsResponse, but written by hand in one buffer with its length: a batch of a
// thousand results cost a reflective encoding and several writes.
func writeSubmitResults(w http.ResponseWriter, results []api.SubmitTxResult) {
	b := make([]byte, 0, 16+len(results)*(len(`{"hash":"","status":"pending"},`)+64))
	b = append(b, `{"results":[`...)
	for i := range results {
		r := &results[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if r.Hash != "" {
			b = appendJSONField(b, "hash", r.Hash)
			b = append(b, ',')
		}
		b = appendJSONField(b, "status", r.Status)
		if r.Error != "" {
			b = append(b, ',')
			b = appendJSONField(b, "error", r.Error)
		}
		if r.Code != "" {
			b = append(b, ',')
			b = appendJSONField(b, "code", r.Code)
		}
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// appendJSONField appends "key":value, value as encoding/json writes a string.
func appendJSONField(b []byte, key, value string) []byte {
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	if plainJSON(value) {
		b = append(b, '"')
		b = append(b, value...)
		return append(b, '"')
	}
	q, _ := json.Marshal(value) // a string always encodes
	return append(b, q...)
}

// plainJSON: s needs no escaping in a JSON string (encoding/json escapes <, > and & too).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// contentCBOR is the media type of a binary batch submission.
const contentCBOR = "application/cbor"

// decodeCBORBatch splits body, a buffer of this request's own, into its transactions without
// copying them.
func decodeCBORBatch(body []byte) ([][]byte, error) {
	raws, err := state.SplitByteStrings(body, api.MaxSubmitBatch)
	if err != nil {
		return nil, fmt.Errorf("body must be a CBOR array of 1..%d byte strings, each a signed transaction: %w", api.MaxSubmitBatch, err)
	}
	return raws, checkBatch(raws)
}

func decodeJSONBatch(body []byte) ([][]byte, error) {
	var req api.SubmitTxsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf(`body must be JSON {"txs": ["<hex-encoded signed transaction>", ...]}: %w`, err)
	}
	if err := checkBatchLen(len(req.Txs)); err != nil {
		return nil, err
	}
	raws := make([][]byte, len(req.Txs))
	for i, s := range req.Txs {
		raw, err := hex.DecodeString(trimHex(s))
		if err != nil || len(raw) == 0 {
			return nil, fmt.Errorf("txs[%d] must be non-empty hex", i)
		}
		raws[i] = raw
	}
	return raws, nil
}

func checkBatchLen(n int) error {
	if n == 0 || n > api.MaxSubmitBatch {
		return fmt.Errorf("txs must hold 1..%d transactions, got %d", api.MaxSubmitBatch, n)
	}
	return nil
}

func checkBatch(raws [][]byte) error {
	if err := checkBatchLen(len(raws)); err != nil {
		return err
	}
	for i, raw := range raws {
		if len(raw) == 0 {
			return fmt.Errorf("txs[%d] is empty", i)
		}
	}
	return nil
}

func (n *Node) handleTx(w http.ResponseWriter, r *http.Request) {
	h, err := state.ParseHash(trimHex(r.PathValue("hash")))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	out := api.TxStatus{Hash: h.String()}
	// A location above the served height is being written this instant; until the block is
	// served the transaction is still pending, so /v1/txs and /v1/blocks never disagree.
	loc, err := n.blocks.TxLocation(h)
	if err != nil && !errors.Is(err, ErrBlockNotFound) {
		n.writeInternalError(w, "looking up transaction "+h.String(), err)
		return
	}
	// A transaction a certified block rejected for a nonce ahead of its sender's stays pending
	// (see execute): until it passes, pending is what it is.
	if err == nil && loc.Height <= n.executedHeight() && (loc.Error == "" || !n.pool.Has(h)) {
		out.Height, out.Index = loc.Height, int(loc.Index)
		out.Status, out.Error = api.TxCommitted, loc.Error
		if loc.Error != "" {
			out.Status = api.TxRejected
		}
		if err := n.describeTx(&out, loc); err != nil {
			n.writeInternalError(w, "reading the block of transaction "+h.String(), err)
			return
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	if n.pool.Has(h) || n.settling(h) {
		out.Status = api.TxPending
		writeJSON(w, http.StatusOK, out)
		return
	}
	if reason, ok := n.rejected.get(h); ok {
		out.Status, out.Error = api.TxRejected, reason
		writeJSON(w, http.StatusOK, out)
		return
	}
	out.Status, out.Error = api.TxUnknown, "no such transaction: not pending, committed or recently rejected here"
	out.Code = api.CodeNotFound
	writeJSON(w, http.StatusNotFound, out)
}

func (n *Node) handleAccount(w http.ResponseWriter, r *http.Request) {
	a, err := state.ParseAddress(r.PathValue("address"))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	resp, err := n.accountResponse(a)
	if err != nil {
		n.writeInternalError(w, "reading account "+a.String(), err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleBlock serves a committed block; with ?wait=MS it waits that long for a block not yet
// committed, so followers (the load generator, explorers) need not poll.
func (n *Node) handleBlock(w http.ResponseWriter, r *http.Request) {
	height, err := strconv.ParseUint(r.PathValue("height"), 10, 64)
	if err != nil || height == 0 {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "height must be a positive integer")
		return
	}
	withTxs := true
	switch r.URL.Query().Get("txs") {
	case "", api.BlockTxsFull:
	case api.BlockTxsNone:
		withTxs = false
	default:
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "txs must be full or none")
		return
	}
	if ws := r.URL.Query().Get("wait"); ws != "" {
		ms, err := strconv.Atoi(ws)
		if err != nil || ms < 0 {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, "wait must be a number of milliseconds")
			return
		}
		deadline := time.NewTimer(min(time.Duration(ms)*time.Millisecond, maxBlockWait))
		defer deadline.Stop()
		for {
			woken := n.commits.wait() // before the check, so a commit in between is not missed
			if n.executedHeight() >= height {
				break
			}
			select {
			case <-woken:
			case <-deadline.C:
				writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("block %d not committed yet", height))
				return
			case <-r.Context().Done():
				return
			}
		}
	}
	if n.executedHeight() < height {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("block %d not committed yet (height is %d)", height, n.executedHeight()))
		return
	}
	if e := n.blocks.Earliest(); height < e {
		writeError(w, http.StatusGone, api.CodePruned, fmt.Sprintf("block %d is not held here: pruned or before state sync "+
			"(the earliest block held is %d); ask a node that keeps every block", height, e))
		return
	}
	resp, err := n.blockResponse(height, withTxs)
	if errors.Is(err, ErrBlockPruned) {
		writeError(w, http.StatusGone, api.CodePruned, fmt.Sprintf("block %d was pruned", height))
		return
	}
	if err != nil {
		n.writeInternalError(w, fmt.Sprintf("reading block %d", height), err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// executedHeight is the last block stored, executed and indexed.
func (n *Node) executedHeight() uint64 { return n.served.Load() }

// blockResponse is the block at height; without withTxs its txs list is empty (the results
// still name each transaction by hash).
func (n *Node) blockResponse(height uint64, withTxs bool) (*api.BlockResponse, error) {
	value, cert, err := n.blocks.Block(height)
	if err != nil {
		return nil, err
	}
	b, err := DecodeBlock(value)
	if err != nil {
		return nil, fmt.Errorf("%w: block %d: %w", ErrStoreCorrupt, height, err) // it was valid when stored
	}
	results, err := n.blocks.Results(height)
	if err != nil {
		return nil, err
	}
	resp := &api.BlockResponse{
		Height:  height,
		Hash:    consensus.DigestOf(value).String(),
		Header:  headerJSON(&b.Header),
		Txs:     make([]string, len(b.Txs)),
		Results: make([]api.TxResultJSON, len(results)),
		Certificate: api.CertificateJSON{
			Height: cert.Height, View: cert.View, Digest: cert.Digest.String(),
			Votes: make([]api.VoteJSON, len(cert.Votes)),
		},
	}
	for i := range b.Evidence {
		resp.Evidence = append(resp.Evidence, n.evidenceJSON(&b.Evidence[i], height))
	}
	if !withTxs {
		resp.Txs = []string{}
	}
	for i := range resp.Txs {
		resp.Txs[i] = hex.EncodeToString(b.Txs[i])
	}
	for i, r := range results {
		resp.Results[i] = api.TxResultJSON{Hash: r.Hash.String(), Error: r.Error}
	}
	for i, v := range cert.Votes {
		resp.Certificate.Votes[i] = api.VoteJSON{Validator: v.Validator, Sig: hex.EncodeToString(v.Sig)}
	}
	return resp, nil
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	cs := n.snapshot.Load()
	var skipped []uint32
	if p := n.skippedNow.Load(); p != nil {
		skipped = *p
	}
	height := n.executedHeight()
	var last string
	if height > 0 {
		value, _, err := n.blocks.Block(height)
		if err != nil {
			n.writeInternalError(w, fmt.Sprintf("reading block %d for the status", height), err)
			return
		}
		last = consensus.DigestOf(value).String()
	}
	resp := api.StatusResponse{
		ChainID:       n.chainID,
		Moniker:       n.cfg.Moniker,
		Height:        height,
		LastBlockHash: last,
		Peers:         len(n.host.Peers()),
		Validator:     n.self >= 0,
		ValidatorIdx:  n.self,
		View:          cs.View,
		Leader:        cs.Leader,
		LeaderName:    n.validatorName(cs.Height, cs.Leader),
		PeerID:        n.host.ID(),
		P2PAddrs:      n.host.Addrs(),
		MempoolSize:   n.pool.Size(),
	}
	resp.LeadersSkipped = skipped
	n.healthStatus(&resp)
	writeJSON(w, http.StatusOK, resp)
}

func (n *Node) handlePeers(w http.ResponseWriter, r *http.Request) {
	names := make(map[string]string, len(n.gen.Validators))
	for _, v := range n.gen.Validators {
		if v.PeerID != "" {
			names[v.PeerID] = v.Name
		}
	}
	peers := n.host.Peers()
	out := api.PeersResponse{Peers: make([]api.PeerStatus, 0, len(peers))}
	for _, p := range peers {
		ps := api.PeerStatus{
			PeerID:    p.ID,
			Addrs:     p.Addrs,
			LatencyMs: float64(p.Latency.Microseconds()) / 1000,
			Role:      api.PeerOther,
		}
		if p.HasScore {
			ps.Score = &p.Score
		}
		if name, ok := names[p.ID]; ok {
			ps.Role, ps.Name = api.PeerValidator, name
		} else if p.Role == p2p.RoleObserver {
			ps.Role = api.PeerObserver
		}
		out.Peers = append(out.Peers, ps)
	}
	writeJSON(w, http.StatusOK, out)
}

// trimHex is lenient about a 0x prefix that people paste.
func trimHex(s string) string { return strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X") }

// handleEvidence lists committed evidence of equivocation.
func (n *Node) handleEvidence(w http.ResponseWriter, r *http.Request) {
	list, err := n.blocks.Evidence(api.MaxEvidenceList, n.executedHeight())
	if err != nil {
		n.writeInternalError(w, "listing committed evidence", err)
		return
	}
	resp := api.EvidenceListResponse{Evidence: make([]api.EvidenceJSON, len(list))}
	for i := range list {
		resp.Evidence[i] = n.evidenceJSON(&list[i].Evidence, list[i].Included)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (n *Node) evidenceJSON(e *consensus.Evidence, included uint64) api.EvidenceJSON {
	out := api.EvidenceJSON{
		ID: e.ID().String(), ValidatorIndex: e.First.From, Height: e.First.Height, View: e.First.View,
		Type: e.First.Type.String(), Digests: [2]string{e.First.Digest.String(), e.Second.Digest.String()},
		Included: included,
	}
	// Committed evidence passed Verify, so the index is in the set.
	if vals := n.validatorsAt(e.First.Height).Validators; int(e.First.From) < len(vals) {
		out.PubKey = hex.EncodeToString(vals[e.First.From].PubKey)
	}
	out.Validator = n.validatorName(e.First.Height, e.First.From)
	return out
}

// handleSubmitEvidence takes {"evidence": "<hex>"}: 202 once verified, pooled and gossiped, 200
// if already pending or on chain, 400 with the reason if it proves nothing (or is too old or
// too far ahead), 503 if the pool is full.
func (n *Node) handleSubmitEvidence(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, evidenceBodyLimit))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "reading body: "+err.Error())
		return
	}
	var req api.SubmitEvidenceRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, `body must be JSON {"evidence": "<hex-encoded evidence>"}: `+err.Error())
		return
	}
	raw, err := hex.DecodeString(trimHex(req.Evidence))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "evidence must be hex")
		return
	}
	e, err := consensus.DecodeEvidence(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	resp := api.SubmitEvidenceResponse{ID: e.ID().String(), Status: api.EvidencePending}
	switch err := n.SubmitEvidence(e); {
	case err == nil:
		writeJSON(w, http.StatusAccepted, resp)
	case isStoreFault(err):
		n.writeInternalError(w, "checking submitted evidence", err)
	case errors.Is(err, ErrEvidenceKnown):
		resp.Status = api.EvidenceKnown
		writeJSON(w, http.StatusOK, resp)
	case errors.Is(err, ErrEvidencePoolFull):
		writeError(w, http.StatusServiceUnavailable, api.CodeOverloaded, err.Error())
	default:
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
	}
}

// txRefusalCode is the error code of a transaction the node refused for err (not a full mempool
// or a store fault: those have their own).
func txRefusalCode(err error) string {
	switch {
	case errors.Is(err, state.ErrWrongChain):
		return api.CodeWrongChain
	case errors.Is(err, state.ErrBadSignature): // ErrNotAuthorized too
		return api.CodeBadSignature
	case errors.Is(err, ErrNonceTooFar), errors.Is(err, state.ErrNonceAhead):
		return api.CodeNonceAhead
	case errors.Is(err, ErrNonceTaken), errors.Is(err, state.ErrBadNonce):
		return api.CodeNonceUsed
	case errors.Is(err, errStopping):
		return api.CodeUnavailable
	}
	return api.CodeBadRequest
}
