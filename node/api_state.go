package node

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// GET endpoints for the consortium's state (issue 4): one per kind of record. Every answer reads
// committed state as of the last applied block. A malformed ID is 400, a well-formed one that
// names nothing is 404, both with a JSON {"error": ...} body.

func (n *Node) stateRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/assets/{symbol}", n.handleAsset)
	mux.HandleFunc("GET /v1/items/{id}", n.handleItem)
	mux.HandleFunc("GET /v1/identities/{id}", n.handleIdentity)
	mux.HandleFunc("GET /v1/claims/{id}", n.handleClaim)
	mux.HandleFunc("GET /v1/notary/{hash}", n.handleNotary)
	mux.HandleFunc("GET /v1/escrows/{id}", n.handleEscrow)
	mux.HandleFunc("GET /v1/ballots/{id}", n.handleBallot)
	mux.HandleFunc("GET /v1/proposals", n.handleProposals)
	mux.HandleFunc("GET /v1/proposals/{id}", n.handleProposal)
	mux.HandleFunc("GET /v1/validators", n.handleValidators)
	mux.HandleFunc("GET /v1/upgrades", n.handleUpgrades)
	mux.HandleFunc("GET /v1/members", n.handleMembers)
	mux.HandleFunc("GET /v1/params", n.handleParams)
}

// accountResponse is GET /v1/accounts/{address}'s answer for a.
func (n *Node) accountResponse(a state.Address) (api.AccountResponse, error) {
	acc, err := n.st.Account(a)
	if err != nil {
		return api.AccountResponse{}, err
	}
	out := api.AccountResponse{Address: a.String(), Balance: acc.Balance, Nonce: acc.Nonce, NextNonce: n.pool.NextNonce(a, acc.Nonce)}
	bals, err := n.st.AssetBalances(a)
	if err != nil {
		return out, err
	}
	out.Assets = apiAssetBalances(bals)
	set, err := n.st.Signers(a)
	if err != nil {
		return out, err
	}
	if set != nil {
		out.Signers = &api.SignersJSON{Signers: hexKeys(set.Signers), Quorum: set.Quorum}
	}
	m, ok, err := n.st.IsMember(a)
	if err != nil && !errors.Is(err, state.ErrNotInitialised) {
		return out, err
	}
	if ok {
		out.Member = m.Name
	}
	return out, nil
}

// pathID reads the {id} path value and checks that it is an ID (see state.MaxIDLen), answering
// 400 if not.
func pathID(w http.ResponseWriter, r *http.Request, what string) (string, bool) {
	id := r.PathValue("id")
	if !state.ValidID(id) {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("%s ID %q is malformed: want 1-%d of A-Z a-z 0-9 . _ : -", what, id, state.MaxIDLen))
		return "", false
	}
	return id, true
}

// writeQueryError answers a failed query: 404 for what does not exist, 500 for anything else.
func (n *Node) writeQueryError(w http.ResponseWriter, err error) {
	if errors.Is(err, state.ErrUnknown) {
		writeError(w, http.StatusNotFound, api.CodeNotFound, err.Error())
		return
	}
	n.writeInternalError(w, "answering a state query", err)
}

func hexKeys(keys [][]byte) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = hex.EncodeToString(k)
	}
	return out
}

func (n *Node) handleAsset(w http.ResponseWriter, r *http.Request) {
	sym := r.PathValue("symbol")
	if !state.ValidSymbol(sym) {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("asset symbol %q is malformed: want 2-12 of A-Z 0-9", sym))
		return
	}
	a, err := n.st.Asset(sym)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiAsset(a))
}

func (n *Node) handleItem(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "item")
	if !ok {
		return
	}
	it, err := n.st.Item(id)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	hist, err := n.st.ItemHistory(id)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ItemResponse{Item: apiItem(it), History: apiItemEvents(hist)})
}

func (n *Node) handleIdentity(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "identity")
	if !ok {
		return
	}
	ident, err := n.st.Identity(id)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiIdentityResponse(ident))
}

func (n *Node) handleClaim(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "claim")
	if !ok {
		return
	}
	// Height and time first: the claim is then judged at a time no later than the block it was
	// read from, never at one before it was issued.
	height, now := n.st.Height(), n.st.TimeMs()
	status, c, err := n.st.ClaimStatus(id, now)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	if status == state.ClaimUnknown || c == nil {
		writeError(w, http.StatusNotFound, api.CodeNotFound, state.ErrClaimNotFound.Error())
		return
	}
	out := api.ClaimResponse{Claim: apiClaim(*c), Status: string(status), AsOfHeight: height, AsOfTimeMs: now}
	if issuer, err := n.st.Identity(c.Issuer); err == nil {
		out.IssuerName, out.IssuerKind = issuer.Name, issuer.Kind
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleNotary(w http.ResponseWriter, r *http.Request) {
	h, err := state.ParseHash(trimHex(r.PathValue("hash")))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	rec, err := n.st.NotaryRecord(h)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiNotary(rec))
}

func (n *Node) handleEscrow(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "escrow")
	if !ok {
		return
	}
	e, err := n.st.Escrow(id)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiEscrowResponse(e))
}

func (n *Node) handleBallot(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "ballot")
	if !ok {
		return
	}
	b, err := n.st.Ballot(id)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	t, err := n.st.Tally(id)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	// The tally read second may include a vote of a later block than b: report its counts.
	b.Tally = t.Counts
	writeJSON(w, http.StatusOK, api.BallotResponse{Ballot: apiBallot(b), Votes: t.Votes, Closed: t.Closed})
}

func (n *Node) handleProposal(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "proposal")
	if !ok {
		return
	}
	p, err := n.st.Proposal(id)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, proposalJSON(p))
}

// proposalStatuses are the values ?status= may take.
var proposalStatuses = map[string]bool{
	state.ProposalOpen: true, state.ProposalPassed: true, state.ProposalRejected: true,
	state.ProposalFailed: true, state.ProposalExpired: true,
}

func (n *Node) handleProposals(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	if status != "" && !proposalStatuses[status] {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("status %q: want open, passed, rejected, failed or expired", status))
		return
	}
	ps, err := n.st.Proposals()
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	members, err := n.st.Members()
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	th, err := n.st.Threshold()
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	out := api.ProposalsResponse{Proposals: []api.ProposalJSON{}, Threshold: apiThreshold(th), Members: len(members)}
	for _, p := range ps {
		if status == "" || p.Status == status {
			out.Proposals = append(out.Proposals, proposalJSON(p))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleValidators(w http.ResponseWriter, r *http.Request) {
	next := n.st.Height() + 1
	cur, err := n.st.ValidatorsAt(next)
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	sched, err := n.st.ValidatorSchedule()
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	out := api.ValidatorsResponse{NextHeight: next, Current: validatorSetJSON(cur), Scheduled: []api.ValidatorSetJSON{}}
	for _, vs := range sched {
		if vs.Height > cur.Height && vs.Height > next {
			out.Scheduled = append(out.Scheduled, validatorSetJSON(vs))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleUpgrades(w http.ResponseWriter, r *http.Request) {
	next := n.st.Height() + 1
	us, err := n.st.Upgrades()
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	out := api.UpgradesResponse{NextHeight: next, ProtocolVersion: state.VersionAt(us, next),
		SupportedVersion: state.SupportedVersion, Upgrades: []api.Upgrade{}}
	for _, u := range us {
		a := apiUpgrade(u)
		a.Status = api.UpgradeScheduled
		if u.Height <= next {
			a.Status = api.UpgradeActive
		}
		out.Upgrades = append(out.Upgrades, a)
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleMembers(w http.ResponseWriter, r *http.Request) {
	members, err := n.st.Members()
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	th, err := n.st.Threshold()
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	out := api.MembersResponse{Members: apiMembers(members), Threshold: apiThreshold(th)}
	if out.Members == nil {
		out.Members = []api.Member{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleParams(w http.ResponseWriter, r *http.Request) {
	ps, err := n.st.Params()
	if err != nil {
		n.writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ParamsResponse{Params: apiParams(ps)})
}
