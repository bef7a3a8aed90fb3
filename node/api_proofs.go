package node

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/node/light"
	"github.com/guild-ledger/guild/state"
)

// Proof endpoints (issue 12). Each answers a proof file (node/light, docs/proofs.md) in its
// canonical bytes, so that a client saves exactly what it received and `guild verify` checks it.

func (n *Node) proofRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/proofs/tx/{hash}", n.handleTxProof)
	mux.HandleFunc("GET /v1/proofs/state/{kind}", n.handleStateProof)
	mux.HandleFunc("GET /v1/proofs/state/{kind}/{arg}", n.handleStateProof)
	mux.HandleFunc("GET /v1/proofs/state/{kind}/{arg}/{arg2}", n.handleStateProof)
}

func (n *Node) handleTxProof(w http.ResponseWriter, r *http.Request) {
	var h state.Hash
	if err := h.UnmarshalText([]byte(r.PathValue("hash"))); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "transaction hash: "+err.Error())
		return
	}
	f, err := n.TxProof(h)
	n.writeProof(w, f, err)
}

func (n *Node) handleStateProof(w http.ResponseWriter, r *http.Request) {
	var args []string
	for _, name := range []string{"arg", "arg2"} {
		if v := r.PathValue(name); v != "" {
			args = append(args, v)
		}
	}
	key, err := state.StateKey(r.PathValue("kind"), args...)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	latest := true
	var height uint64
	if q := r.URL.Query().Get("height"); q != "" {
		if height, err = strconv.ParseUint(q, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, "height: want a block height")
			return
		}
		latest = false
	}
	f, err := n.StateProof(key, height, latest)
	n.writeProof(w, f, err)
}

func (n *Node) writeProof(w http.ResponseWriter, f *light.File, err error) {
	switch {
	case errors.Is(err, ErrNotProvable), errors.Is(err, ErrBlockNotFound), errors.Is(err, ErrNoReceipts):
		writeError(w, http.StatusNotFound, api.CodeNotFound, err.Error())
		return
	case errors.Is(err, state.ErrPruned), errors.Is(err, ErrBlockPruned):
		// The block that anchors the proof, or the state tree after the block before it, is
		// no longer held (storage.keep_blocks, or before this node's state sync).
		msg := err.Error()
		if e := n.blocks.Earliest(); !errors.Is(err, state.ErrPruned) && e > 1 {
			msg = fmt.Sprintf("%s: earliest provable height is %d", msg, max(e-1, n.st.TreeEarliest()))
		}
		writeError(w, http.StatusGone, api.CodePruned, msg)
		return
	case err != nil:
		n.writeInternalError(w, "building a proof", err)
		return
	}
	b, err := f.Encode()
	if err != nil {
		n.writeInternalError(w, "encoding a proof", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
