package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// The shapes the API had when its responses embedded the state's records: the JSON of the api
// package's own types must be the same, byte for byte.
type (
	oldAccountResponse struct {
		Address   string               `json:"address"`
		Balance   uint64               `json:"balance"`
		Nonce     uint64               `json:"nonce"`
		NextNonce uint64               `json:"next_nonce"`
		Assets    []state.AssetBalance `json:"assets,omitempty"`
		Signers   *api.SignersJSON     `json:"signers,omitempty"`
		Member    string               `json:"member,omitempty"`
	}
	oldItemResponse struct {
		state.Item
		History []state.ItemEvent `json:"history"`
	}
	oldIdentityResponse struct {
		state.Identity
		Keys []string `json:"keys,omitempty"`
	}
	oldClaimResponse struct {
		state.Claim
		Status     state.ClaimStatus `json:"status"`
		IssuerName string            `json:"issuer_name,omitempty"`
		IssuerKind string            `json:"issuer_kind,omitempty"`
		AsOfHeight uint64            `json:"as_of_height"`
		AsOfTimeMs int64             `json:"as_of_time_ms"`
	}
	oldEscrowResponse struct {
		state.Escrow
		Preimage string `json:"preimage,omitempty"`
	}
	oldBallotResponse struct {
		state.Ballot
		Votes  uint64 `json:"votes"`
		Closed bool   `json:"closed"`
	}
	oldProposalJSON struct {
		state.Proposal
		SetValidator *api.ValidatorJSON `json:"set_validator,omitempty"`
	}
	oldProposalsResponse struct {
		Proposals []oldProposalJSON `json:"proposals"`
		Threshold state.Threshold   `json:"threshold"`
		Members   int               `json:"members"`
	}
	oldMembersResponse struct {
		Members   []state.Member  `json:"members"`
		Threshold state.Threshold `json:"threshold"`
	}
	oldParamsResponse struct {
		Params []state.Param `json:"params"`
	}
)

func sampleAddr(b byte) state.Address {
	var a state.Address
	for i := range a {
		a[i] = b + byte(i)
	}
	return a
}

func sampleHash(b byte) state.Hash {
	var h state.Hash
	for i := range h {
		h[i] = b ^ byte(i*7)
	}
	return h
}

func oldProposal(p state.Proposal) oldProposalJSON {
	out := oldProposalJSON{Proposal: p}
	if p.SetValidator != nil {
		v := validatorJSON(*p.SetValidator)
		out.SetValidator = &v
	}
	return out
}

// sameJSON fails unless old and new marshal to the same bytes, and old's JSON decodes into a
// value of new's type that marshals to them again (what a client reads).
func sameJSON[T any](t *testing.T, name string, old any, new T) {
	t.Helper()
	want, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(new)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: JSON differs\n old %s\n new %s", name, want, got)
		return
	}
	var back T
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatalf("%s: decoding the old JSON: %v", name, err)
	}
	if again, _ := json.Marshal(back); !bytes.Equal(again, want) {
		t.Errorf("%s: round trip differs\n old  %s\n back %s", name, want, again)
	}
}

func TestAPIConvertSameJSON(t *testing.T) {
	a1, a2, a3 := sampleAddr(1), sampleAddr(50), sampleAddr(200)
	h1, h2 := sampleHash(3), sampleHash(90)
	bals := []state.AssetBalance{{Symbol: "GLD", Amount: 70}, {Symbol: "USDG", Amount: 1}}
	for i, b := range [][]state.AssetBalance{bals, nil} {
		old := oldAccountResponse{Address: a1.String(), Balance: 5, Nonce: 2, NextNonce: 3, Assets: b,
			Signers: &api.SignersJSON{Signers: []string{"ab"}, Quorum: 1}, Member: "acme"}
		new := api.AccountResponse{Address: a1.String(), Balance: 5, Nonce: 2, NextNonce: 3, Assets: apiAssetBalances(b),
			Signers: &api.SignersJSON{Signers: []string{"ab"}, Quorum: 1}, Member: "acme"}
		sameJSON(t, "account "+string(rune('0'+i)), old, new)
	}

	for _, as := range []state.Asset{{Symbol: "GLD", Name: "Gold", Decimals: 2, MaxSupply: 1000, Supply: 100, Issuer: a1, Height: 7}, {}} {
		sameJSON(t, "asset", as, apiAsset(as))
	}

	item := state.Item{ID: "diamond-1", MetadataHash: h1, Owner: a2, Registrar: a1, Height: 4, Events: 2}
	hist := []state.ItemEvent{
		{Seq: 0, Event: state.EventRegister, From: a1, To: a1, Tx: h2, Height: 4, TimeMs: 1700000000000},
		{Seq: 1, Event: state.EventTransfer, From: a1, To: a2, Tx: h1, Height: 5, TimeMs: 1700000001000},
	}
	sameJSON(t, "item", oldItemResponse{Item: item, History: hist}, api.ItemResponse{Item: apiItem(item), History: apiItemEvents(hist)})
	sameJSON(t, "item, no history", oldItemResponse{}, api.ItemResponse{Item: apiItem(state.Item{}), History: apiItemEvents(nil)})

	for _, id := range []state.Identity{
		{ID: "acme-org", Kind: state.KindOrganization, Name: "Acme", Controller: a1, Keys: [][]byte{{1, 2, 3}, {4}}, Owner: "x", Height: 9},
		{ID: "dana", Kind: state.KindPerson, Controller: a2},
	} {
		sameJSON(t, "identity "+id.ID, oldIdentityResponse{Identity: id, Keys: hexKeys(id.Keys)}, apiIdentityResponse(id))
	}

	for _, c := range []state.Claim{
		{ID: "kyc-1", Issuer: "acme-org", Subject: "dana", Schema: "kyc/v1", ContentHash: h1, IssuedBy: a1, Height: 3,
			TimeMs: 17, ExpiresMs: 99, Revoked: true, RevokedHeight: 8},
		{ID: "kyc-2", Issuer: "acme-org", Subject: "dana", Schema: "kyc/v1", ContentHash: h2, IssuedBy: a3, Height: 3, TimeMs: 17},
	} {
		old := oldClaimResponse{Claim: c, Status: state.ClaimRevoked, IssuerName: "Acme", AsOfHeight: 10, AsOfTimeMs: 20}
		new := api.ClaimResponse{Claim: apiClaim(c), Status: string(state.ClaimRevoked), IssuerName: "Acme", AsOfHeight: 10, AsOfTimeMs: 20}
		sameJSON(t, "claim "+c.ID, old, new)
	}

	nr := state.NotaryRecord{Hash: h1, By: a3, Height: 12, TimeMs: 1234, Tx: h2}
	sameJSON(t, "notary", nr, apiNotary(nr))

	arb, closer, lock := a3, a2, h2
	for _, e := range []state.Escrow{
		{ID: "deal-1", Depositor: a1, Beneficiary: a2, Asset: "GLD", Amount: 50, Arbiter: &arb, HashLock: &lock, Deadline: 100,
			Status: state.EscrowReleased, Height: 3, ClosedAt: 5, ClosedBy: &closer, Preimage: []byte("open sesame")},
		{ID: "deal-2", Depositor: a1, Beneficiary: a2, Amount: 1, Deadline: 9, Status: state.EscrowOpen, Height: 3},
	} {
		old := oldEscrowResponse{Escrow: e}
		if len(e.Preimage) > 0 {
			old.Preimage = hex.EncodeToString(e.Preimage)
		}
		sameJSON(t, "escrow "+e.ID, old, apiEscrowResponse(e))
	}

	for _, b := range []state.Ballot{
		{ID: "vote-1", Title: "Venue", Creator: a1, Options: []string{"Lisbon", "Oslo"}, Eligible: []string{"a", "b"}, Closes: 50,
			Tally: []uint64{0, 1}, Height: 4},
		{ID: "vote-2"},
	} {
		old := oldBallotResponse{Ballot: b, Votes: 1, Closed: true}
		sameJSON(t, "ballot "+b.ID, old, api.BallotResponse{Ballot: apiBallot(b), Votes: 1, Closed: true})
	}

	props := []state.Proposal{
		{ID: "p-member", Proposer: "acme", AddMember: &state.Member{Name: "newco", Controller: a2}, Height: 3,
			Yes: []string{"acme"}, No: []string{"beta"}, Status: state.ProposalPassed, Reason: "r", DecidedAt: 4},
		{ID: "p-remove", Proposer: "acme", RemoveMember: "beta", Height: 3, Status: state.ProposalOpen},
		{ID: "p-val", Proposer: "acme", SetValidator: &state.Validator{Name: "v5", PubKey: []byte{9, 8}, PeerID: "12D3", Power: 2},
			EffectiveHeight: 40, Height: 3, Status: state.ProposalExpired},
		{ID: "p-param", Proposer: "acme", SetParam: &state.Param{Name: state.ParamMaxBlockTxs, Value: 500}, Height: 3,
			Status: state.ProposalFailed},
	}
	oldPs := oldProposalsResponse{Threshold: state.DefaultThreshold, Members: 2}
	newPs := api.ProposalsResponse{Threshold: apiThreshold(state.DefaultThreshold), Members: 2}
	for _, p := range props {
		sameJSON(t, "proposal "+p.ID, oldProposal(p), proposalJSON(p))
		oldPs.Proposals = append(oldPs.Proposals, oldProposal(p))
		newPs.Proposals = append(newPs.Proposals, proposalJSON(p))
	}
	sameJSON(t, "proposals", oldPs, newPs)

	members := []state.Member{{Name: "acme", Controller: a1}, {Name: "beta", Controller: a2}}
	sameJSON(t, "members", oldMembersResponse{Members: members, Threshold: state.Threshold{Num: 2, Den: 3}},
		api.MembersResponse{Members: apiMembers(members), Threshold: apiThreshold(state.Threshold{Num: 2, Den: 3})})

	params := []state.Param{{Name: state.ParamMaxBlockTxs, Value: 500}, {Name: "x", Value: 0}}
	sameJSON(t, "params", oldParamsResponse{Params: params}, api.ParamsResponse{Params: apiParams(params)})
	sameJSON(t, "no params", oldParamsResponse{}, api.ParamsResponse{Params: apiParams(nil)})
}
