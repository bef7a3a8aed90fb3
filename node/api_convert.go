package node

import (
	"encoding/hex"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// Conversions from the state's records to the API's wire types (package api does not import
// state, so that clients do not link the store). Each gives the JSON the record's own tags give:
// hashes as hex, addresses in their checksummed text form; nil slices stay nil (null in JSON).

func hashString(h *state.Hash) string {
	if h == nil {
		return ""
	}
	return h.String()
}

func addrString(a *state.Address) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func apiAsset(a state.Asset) api.AssetResponse {
	return api.AssetResponse{Symbol: a.Symbol, Name: a.Name, Decimals: a.Decimals, MaxSupply: a.MaxSupply,
		Supply: a.Supply, Issuer: a.Issuer.String(), Height: a.Height}
}

func apiAssetBalances(bs []state.AssetBalance) []api.AssetBalance {
	if bs == nil {
		return nil
	}
	out := make([]api.AssetBalance, len(bs))
	for i, b := range bs {
		out[i] = api.AssetBalance{Symbol: b.Symbol, Amount: b.Amount}
	}
	return out
}

func apiItem(it state.Item) api.Item {
	return api.Item{ID: it.ID, MetadataHash: it.MetadataHash.String(), Owner: it.Owner.String(),
		Registrar: it.Registrar.String(), Height: it.Height, Events: it.Events}
}

func apiItemEvents(evs []state.ItemEvent) []api.ItemEvent {
	if evs == nil {
		return nil
	}
	out := make([]api.ItemEvent, len(evs))
	for i, e := range evs {
		out[i] = api.ItemEvent{Seq: e.Seq, Event: e.Event, From: e.From.String(), To: e.To.String(),
			Tx: e.Tx.String(), Height: e.Height, TimeMs: e.TimeMs}
	}
	return out
}

func apiIdentityResponse(id state.Identity) api.IdentityResponse {
	return api.IdentityResponse{
		Identity: api.Identity{ID: id.ID, Kind: id.Kind, Name: id.Name, Controller: id.Controller.String(),
			Owner: id.Owner, Height: id.Height},
		Keys: hexKeys(id.Keys),
	}
}

func apiClaim(c state.Claim) api.Claim {
	return api.Claim{ID: c.ID, Issuer: c.Issuer, Subject: c.Subject, Schema: c.Schema,
		ContentHash: c.ContentHash.String(), IssuedBy: c.IssuedBy.String(), Height: c.Height, TimeMs: c.TimeMs,
		ExpiresMs: c.ExpiresMs, Revoked: c.Revoked, RevokedHeight: c.RevokedHeight, Private: c.Private}
}

func apiNotary(r state.NotaryRecord) api.NotaryResponse {
	return api.NotaryResponse{Hash: r.Hash.String(), By: r.By.String(), Height: r.Height, TimeMs: r.TimeMs,
		Tx: r.Tx.String()}
}

func apiEscrowResponse(e state.Escrow) api.EscrowResponse {
	out := api.EscrowResponse{Escrow: api.Escrow{ID: e.ID, Depositor: e.Depositor.String(),
		Beneficiary: e.Beneficiary.String(), Asset: e.Asset, Amount: e.Amount, Arbiter: addrString(e.Arbiter),
		HashLock: hashString(e.HashLock), Deadline: e.Deadline, Status: e.Status, Height: e.Height,
		ClosedAt: e.ClosedAt, ClosedBy: addrString(e.ClosedBy)}}
	if len(e.Preimage) > 0 {
		out.Preimage = hex.EncodeToString(e.Preimage)
	}
	return out
}

func apiBallot(b state.Ballot) api.Ballot {
	return api.Ballot{ID: b.ID, Title: b.Title, Creator: b.Creator.String(), Options: b.Options,
		Eligible: b.Eligible, Closes: b.Closes, Tally: b.Tally, Height: b.Height}
}

func apiMember(m state.Member) api.Member {
	return api.Member{Name: m.Name, Controller: m.Controller.String()}
}

func apiMembers(ms []state.Member) []api.Member {
	if ms == nil {
		return nil
	}
	out := make([]api.Member, len(ms))
	for i, m := range ms {
		out[i] = apiMember(m)
	}
	return out
}

func apiParams(ps []state.Param) []api.Param {
	if ps == nil {
		return nil
	}
	out := make([]api.Param, len(ps))
	for i, p := range ps {
		out[i] = api.Param{Name: p.Name, Value: p.Value}
	}
	return out
}

func apiThreshold(t state.Threshold) api.Threshold { return api.Threshold{Num: t.Num, Den: t.Den} }

func validatorJSON(v state.Validator) api.ValidatorJSON {
	return api.ValidatorJSON{Name: v.Name, PubKey: hex.EncodeToString(v.PubKey), PeerID: v.PeerID, Power: v.Power}
}

func validatorSetJSON(vs state.ValidatorSetAt) api.ValidatorSetJSON {
	out := api.ValidatorSetJSON{Height: vs.Height, Validators: make([]api.ValidatorJSON, len(vs.Validators))}
	for i, v := range vs.Validators {
		out.Validators[i] = validatorJSON(v)
		out.TotalPower += v.Power
	}
	return out
}

func proposalJSON(p state.Proposal) api.ProposalJSON {
	out := api.ProposalJSON{Proposal: api.Proposal{ID: p.ID, Proposer: p.Proposer, RemoveMember: p.RemoveMember,
		EffectiveHeight: p.EffectiveHeight, Height: p.Height, Yes: p.Yes, No: p.No, Status: p.Status,
		Reason: p.Reason, DecidedAt: p.DecidedAt}}
	if p.AddMember != nil {
		m := apiMember(*p.AddMember)
		out.AddMember = &m
	}
	if p.SetParam != nil {
		out.SetParam = &api.Param{Name: p.SetParam.Name, Value: p.SetParam.Value}
	}
	if p.SetValidator != nil {
		v := validatorJSON(*p.SetValidator)
		out.SetValidator = &v
	}
	if p.Upgrade != nil {
		u := apiUpgrade(*p.Upgrade)
		out.Upgrade = &u
	}
	out.CancelUpgrade = p.CancelUpgrade
	return out
}

func apiUpgrade(u state.Upgrade) api.Upgrade {
	return api.Upgrade{Name: u.Name, Height: u.Height, Version: u.Version, Info: u.Info, Proposal: u.Proposal}
}
