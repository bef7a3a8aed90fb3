package state

import (
	"bytes"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
)

// supplies returns the native supply and each asset's: what accounts hold plus what open escrows
// hold. It also checks each asset's recorded Supply against that sum.
func (m *model) supplies(t testing.TB) (*big.Int, map[string]*big.Int) {
	native := new(big.Int)
	for _, a := range m.accts {
		native.Add(native, new(big.Int).SetUint64(a.Balance))
	}
	assets := map[string]*big.Int{}
	for sym := range m.assets {
		assets[sym] = new(big.Int)
	}
	for _, bs := range m.bals {
		for sym, v := range bs {
			assets[sym].Add(assets[sym], new(big.Int).SetUint64(v))
		}
	}
	for _, e := range m.escrows {
		if e.Status != EscrowOpen {
			continue
		}
		if e.Asset == "" {
			native.Add(native, new(big.Int).SetUint64(e.Amount))
		} else {
			assets[e.Asset].Add(assets[e.Asset], new(big.Int).SetUint64(e.Amount))
		}
	}
	for sym, a := range m.assets {
		if assets[sym].Cmp(new(big.Int).SetUint64(a.Supply)) != 0 {
			t.Fatalf("model: %s supply %d, held %v", sym, a.Supply, assets[sym])
		}
	}
	return native, assets
}

// dump is the account entries the model predicts, as storeDump gives them.
func (m *model) dump() map[string]string {
	out := map[string]string{}
	for a, acct := range m.accts {
		if acct != (Account{}) {
			k := accountKey(a)
			out[fmt.Sprintf("%x", k[:])] = fmt.Sprintf("%x", appendAccount(nil, acct))
		}
	}
	return out
}

// check compares every record the model holds with what s's queries return.
func (m *model) check(t testing.TB, s *State, where string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s: %s", where, fmt.Sprintf(format, args...))
	}
	for a, set := range m.signers {
		got, err := s.Signers(a)
		if err != nil || got == nil || got.Quorum != set.Quorum || len(got.Signers) != len(set.Signers) {
			fail("signers of %s: %+v %v, model %+v", a, got, err, set)
		}
	}
	for sym, want := range m.assets {
		got, err := s.Asset(sym)
		if err != nil || got.Supply != want.Supply || got.Issuer != want.Issuer || got.MaxSupply != want.MaxSupply {
			fail("asset %s: %+v %v, model %+v", sym, got, err, want)
		}
	}
	for a, bs := range m.bals {
		got, err := s.AssetBalances(a)
		if err != nil || len(got) != len(bs) {
			fail("balances of %s: %+v %v, model %v", a, got, err, bs)
		}
		for _, g := range got {
			if bs[g.Symbol] != g.Amount {
				fail("%s balance of %s: %d, model %d", g.Symbol, a, g.Amount, bs[g.Symbol])
			}
		}
	}
	for id, want := range m.items {
		got, err := s.Item(id)
		if err != nil || got.Owner != want.Owner || got.Events != want.Events {
			fail("item %s: %+v %v, model %+v", id, got, err, want)
		}
		hist, err := s.ItemHistory(id)
		if err != nil || uint64(len(hist)) != want.Events || hist[len(hist)-1].To != want.Owner {
			fail("item %s history: %+v %v", id, hist, err)
		}
	}
	for h, want := range m.notary {
		if got, err := s.NotaryRecord(h); err != nil || got != want {
			fail("anchor %s: %+v %v, model %+v", h, got, err, want)
		}
	}
	for id, want := range m.escrows {
		if got, err := s.Escrow(id); err != nil || got.Status != want.Status || got.Amount != want.Amount {
			fail("escrow %s: %+v %v, model %+v", id, got, err, want)
		}
	}
	for id, want := range m.idents {
		if got, err := s.Identity(id); err != nil || got.Controller != want.Controller || got.Kind != want.Kind {
			fail("identity %s: %+v %v, model %+v", id, got, err, want)
		}
	}
	for id, want := range m.claims {
		if got, err := s.Claim(id); err != nil || got.Revoked != want.Revoked || got.IssuedBy != want.IssuedBy {
			fail("claim %s: %+v %v, model %+v", id, got, err, want)
		}
	}
	for id, want := range m.ballots {
		if got, err := s.Ballot(id); err != nil || !slices.Equal(got.Tally, want.Tally) {
			fail("ballot %s: %+v %v, model %+v", id, got, err, want)
		}
	}
	for id, want := range m.props {
		got, err := s.Proposal(id)
		wantStatus := want.Status
		if want.Status == ProposalOpen && want.SetValidator != nil && want.EffectiveHeight < s.Height()+1+MinValidatorDelay {
			wantStatus = ProposalExpired
		}
		// The model's reason is the sentinel's text, which the state's elaborates.
		if err != nil || got.Status != wantStatus || !slices.Equal(got.Yes, want.Yes) || !slices.Equal(got.No, want.No) || !strings.HasPrefix(got.Reason, want.Reason) {
			fail("proposal %s: %+v %v, model %+v", id, got, err, want)
		}
	}
	if ps, err := s.Proposals(); err != nil || len(ps) != len(m.props) {
		fail("%d proposals, model %d (%v)", len(ps), len(m.props), err)
	}
	if got, err := s.Members(); err != nil || !slices.Equal(got, m.members) {
		fail("members %+v %v, model %+v", got, err, m.members)
	}
	ps, err := s.Params()
	if err != nil || len(ps) != len(m.params) {
		fail("params %+v %v", ps, err)
	}
	for _, p := range ps {
		if m.params[p.Name] != p.Value {
			fail("param %s = %d, model %d", p.Name, p.Value, m.params[p.Name])
		}
	}
	sched, err := s.ValidatorSchedule()
	if err != nil || len(sched) != len(m.vals) {
		fail("validator schedule %+v %v, model %+v", sched, err, m.vals)
	}
	for _, vs := range sched {
		if !sameValidators(vs.Validators, m.vals[vs.Height]) {
			fail("validators at %d: %+v, model %+v", vs.Height, vs.Validators, m.vals[vs.Height])
		}
	}
}

// sameValidators reports whether two sets are equal .
func sameValidators(a, b []Validator) bool {
	return slices.EqualFunc(a, b, func(x, y Validator) bool {
		return x.Name == y.Name && bytes.Equal(x.PubKey, y.PubKey) && x.PeerID == y.PeerID && x.Power == y.Power
	})
}
