package node

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// The API of private payloads (issue 14): the public parts for anyone, the ciphertext only to a
// caller that proves, by a signature (api.VerifyPrivateRead), that it controls a holder member's
// account. The node never sees plaintext: wallets encrypt and decrypt.

// privateBodyLimit: a transaction and a ciphertext, both hex, inside JSON.
const privateBodyLimit = 2*state.MaxTxBytes + 2*state.MaxPrivateBytes + 1024

func (n *Node) privateRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/private", n.handleSubmitPrivate)
	mux.HandleFunc("GET /v1/private", n.handlePrivateList)
	mux.HandleFunc("GET /v1/private/{commitment}", n.handlePrivateRecord)
	mux.HandleFunc("GET /v1/private/{commitment}/ciphertext", n.handlePrivateCiphertext)
	mux.HandleFunc("GET /v1/encryption-keys", n.handleEncryptionKeys)
	mux.HandleFunc("GET /v1/encryption-keys/{owner}", n.handleEncryptionKey)
	mux.HandleFunc("GET /v1/private-escrows/{id}", n.handlePrivateEscrow)
}

func (n *Node) handleSubmitPrivate(w http.ResponseWriter, r *http.Request) {
	if n.refuseIfOverloaded(w) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, privateBodyLimit))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "reading body: "+err.Error())
		return
	}
	var req api.SubmitPrivateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, `body must be JSON {"tx": "<hex>", "ciphertext": "<hex>"}: `+err.Error())
		return
	}
	raw, err1 := hex.DecodeString(trimHex(req.Tx))
	ct, err2 := hex.DecodeString(trimHex(req.Ciphertext))
	if err1 != nil || err2 != nil || len(raw) == 0 || len(ct) == 0 {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "tx and ciphertext must be non-empty hex")
		return
	}
	h, c, err := n.SubmitPrivate(r.Context(), raw, ct)
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, api.SubmitPrivateResponse{Hash: h.String(), Commitment: c.String(), Status: api.TxPending})
	case errors.Is(err, errPrivateNotHolder):
		n.private.refused.WithLabelValues("api").Inc()
		writeError(w, http.StatusForbidden, api.CodeForbidden, err.Error())
	case errors.Is(err, ErrMempoolFull):
		w.Header().Set("Retry-After", retryAfterSeconds)
		writeError(w, http.StatusServiceUnavailable, api.CodeMempoolFull, err.Error())
	case isStoreFault(err):
		n.writeInternalError(w, "keeping a private payload", err)
	default:
		writeError(w, http.StatusBadRequest, txRefusalCode(err), err.Error())
	}
}

func (n *Node) apiPrivateRecord(rec *state.PrivateRecord, h uint64) api.PrivateRecord {
	held, _ := n.private.store.has(rec.Commitment)
	return api.PrivateRecord{Commitment: rec.Commitment.String(), Kind: rec.Kind, Ref: rec.Ref,
		Sender: rec.Sender.String(), SenderMember: rec.SenderMember, Recipients: rec.Recipients,
		Expires: rec.Expires, Size: rec.Size, Height: rec.Height, Tx: rec.Tx.String(),
		Held: held, Purged: rec.ExpiredAt(h)}
}

// handlePrivateList lists the public parts of every payload, or (?member=NAME) those NAME holds.
func (n *Node) handlePrivateList(w http.ResponseWriter, r *http.Request) {
	member := r.URL.Query().Get("member")
	recs, err := n.st.PrivateRecords()
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	h := n.executedHeight()
	out := api.PrivateListResponse{Member: n.privateMember(), Records: []api.PrivateRecord{}}
	for i := range recs {
		if member == "" || recs[i].IsHolder(member) {
			out.Records = append(out.Records, n.apiPrivateRecord(&recs[i], h))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) pathCommitment(w http.ResponseWriter, r *http.Request) (state.PrivateRecord, bool) {
	c, err := state.ParseHash(trimHex(r.PathValue("commitment")))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return state.PrivateRecord{}, false
	}
	rec, err := n.st.PrivateRecord(c)
	if err != nil {
		n.writeQueryError(w, err)
		return rec, false
	}
	return rec, true
}

func (n *Node) handlePrivateRecord(w http.ResponseWriter, r *http.Request) {
	rec, ok := n.pathCommitment(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, n.apiPrivateRecord(&rec, n.executedHeight()))
}

// handlePrivateCiphertext serves a ciphertext to a caller that signed the request (headers
// api.Header*) with a key controlling a holder member's account: 403 to anyone else.
func (n *Node) handlePrivateCiphertext(w http.ResponseWriter, r *http.Request) {
	rec, ok := n.pathCommitment(w, r)
	if !ok {
		return
	}
	pub, err := api.VerifyPrivateRead(r.Header, n.chainID, rec.Commitment, time.Now().UnixMilli())
	if err == nil {
		err = n.privateReader(&rec, pub)
	}
	if err != nil {
		n.private.refused.WithLabelValues("api").Inc()
		writeError(w, http.StatusForbidden, api.CodeForbidden, err.Error())
		return
	}
	if rec.ExpiredAt(n.executedHeight()) {
		writeError(w, http.StatusGone, api.CodeGone, fmt.Sprintf("the ciphertext was purged at its expiry height %d; the commitment stays on chain", rec.Expires))
		return
	}
	ct, err := n.private.store.get(rec.Commitment)
	if err != nil {
		n.writeInternalError(w, "reading the private store", err)
		return
	}
	if ct == nil {
		writeError(w, http.StatusNotFound, api.CodeNotFound, "this node does not hold the ciphertext (yet): it fetches it from the other holders' nodes")
		return
	}
	writeJSON(w, http.StatusOK, api.PrivateCiphertext{Commitment: rec.Commitment.String(), Ciphertext: hex.EncodeToString(ct)})
}

// privateReader checks that pub controls the account of a member holding rec: it is the
// account's own key, or one of its signatories. The node serves only its own member's payloads.
func (n *Node) privateReader(rec *state.PrivateRecord, pub ed25519.PublicKey) error {
	self := n.privateMember()
	if !rec.IsHolder(self) {
		return fmt.Errorf("%w: this node holds for %q", errPrivateNotHolder, self)
	}
	members, err := n.st.Members()
	if err != nil {
		return err
	}
	addr := state.AddressFromPubKey(pub)
	for _, m := range members {
		if !rec.IsHolder(m.Name) {
			continue
		}
		set, err := n.st.Signers(m.Controller)
		if err != nil {
			return err
		}
		if set == nil && m.Controller == addr {
			return nil
		}
		if set != nil {
			for _, k := range set.Signers {
				if bytes.Equal(k, pub) {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("the signing key %s controls no holder's account (holders: %v)", addr, rec.Holders())
}

func (n *Node) handleEncryptionKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := n.st.EncryptionKeys()
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	out := api.EncryptionKeysResponse{Keys: make([]api.EncryptionKey, len(keys))}
	for i, k := range keys {
		out.Keys[i] = apiEncryptionKey(k)
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleEncryptionKey(w http.ResponseWriter, r *http.Request) {
	k, err := n.st.EncryptionKey(r.PathValue("owner"))
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiEncryptionKey(k))
}

func apiEncryptionKey(k state.EncryptionKey) api.EncryptionKey {
	return api.EncryptionKey{Owner: k.Owner, Key: k.Key, Version: k.Version, Height: k.Height, SetBy: k.SetBy.String()}
}

func (n *Node) handlePrivateEscrow(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "private escrow")
	if !ok {
		return
	}
	e, err := n.st.PrivateEscrow(id)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.PrivateEscrow{ID: e.ID, Depositor: e.Depositor.String(),
		Beneficiary: e.Beneficiary.String(), Arbiter: addrString(e.Arbiter), Deadline: e.Deadline,
		Commitment: e.Commitment.String(), Status: e.Status, Height: e.Height, ClosedAt: e.ClosedAt,
		ClosedBy: addrString(e.ClosedBy)})
}
