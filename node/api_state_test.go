package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// startSoloMember runs a one-validator node whose funded account is the controller of the only
// consortium member, "acme", so that it may create assets, attest and propose.
func startSoloMember(t *testing.T) (*api.Client, ed25519.PrivateKey, string) {
	t.Helper()
	home, key := soloHome(t, "memdb")
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	gen.Members = []state.Member{{Name: "acme", Controller: state.AddressFromPubKey(key.Public().(ed25519.PublicKey))}}
	if err := gen.Save(filepath.Join(home, GenesisFile)); err != nil {
		t.Fatal(err)
	}
	_, c, _ := runNode(t, home)
	return c, key, gen.ChainID
}

// commitAll signs each body with key, from key's account with consecutive nonces from nonce,
// submits them all, and waits for every one to be committed without error.
func commitAll(t *testing.T, ctx context.Context, c *api.Client, chainID string, key ed25519.PrivateKey, nonce uint64, bodies ...state.TxBody) {
	t.Helper()
	from := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	var hashes []string
	for i, b := range bodies {
		b.ChainID, b.From, b.Nonce = chainID, from, nonce+uint64(i)
		tx, err := state.SignTx(b, key)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := tx.Encode()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.SubmitTx(ctx, raw)
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
		hashes = append(hashes, resp.Hash)
	}
	for i, h := range hashes {
		ts, err := c.WaitTx(ctx, h)
		if err != nil || ts.Status != api.TxCommitted {
			t.Fatalf("op %d: %+v %v", i, ts, err)
		}
	}
}

// Every kind of state the operations of issue 4 make is served by its GET endpoint, with the
// values the operations gave it; what does not exist is 404 and a malformed ID 400, each with a
// JSON error.
func TestStateQueries(t *testing.T) {
	c, key, chainID := startSoloMember(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	me := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	var other state.Address
	other[0] = 42
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	doc := sha256.Sum256([]byte("photo"))
	secret := []byte("open sesame")
	lock := state.Hash(sha256.Sum256(secret))
	newVal, _, _ := ed25519.GenerateKey(rand.Reader)
	cosigner, _, _ := ed25519.GenerateKey(rand.Reader)
	far := st.Height + 1000

	commitAll(t, ctx, c, chainID, key, 0,
		state.TxBody{AssetCreate: &state.AssetCreate{Symbol: "GLD", Name: "Gold", Decimals: 2, MaxSupply: 1000}},
		state.TxBody{AssetMint: &state.AssetMint{Symbol: "GLD", To: me, Amount: 100}},
		state.TxBody{AssetTransfer: &state.AssetTransfer{Symbol: "GLD", To: other, Amount: 30}},
		state.TxBody{ItemRegister: &state.ItemRegister{ID: "diamond-1", MetadataHash: doc}},
		state.TxBody{ItemTransfer: &state.ItemTransfer{ID: "diamond-1", To: other}},
		state.TxBody{IdentityRegister: &state.IdentityRegister{ID: "acme-org", Kind: state.KindOrganization, Name: "Acme",
			Keys: [][]byte{key.Public().(ed25519.PublicKey)}}},
		state.TxBody{IdentityRegister: &state.IdentityRegister{ID: "dana", Kind: state.KindPerson}},
		state.TxBody{ClaimIssue: &state.ClaimIssue{ID: "kyc-1", Issuer: "acme-org", Subject: "dana", Schema: "kyc/v1", ContentHash: doc}},
		state.TxBody{ClaimIssue: &state.ClaimIssue{ID: "kyc-2", Issuer: "acme-org", Subject: "dana", Schema: "kyc/v1", ContentHash: doc}},
		state.TxBody{ClaimRevoke: &state.ClaimRevoke{ID: "kyc-2"}},
		state.TxBody{NotaryAnchor: &state.NotaryAnchor{Hash: doc}},
		state.TxBody{EscrowCreate: &state.EscrowCreate{ID: "deal-1", Beneficiary: other, Amount: 50, HashLock: &lock, Deadline: far}},
		state.TxBody{EscrowRelease: &state.EscrowRelease{ID: "deal-1", Preimage: secret}},
		state.TxBody{BallotCreate: &state.BallotCreate{ID: "vote-1", Title: "Venue", Options: []string{"Lisbon", "Oslo"},
			Eligible: []string{"acme-org", "dana"}, Closes: far}},
		state.TxBody{BallotVote: &state.BallotVote{ID: "vote-1", Identity: "acme-org", Option: 1}},
		state.TxBody{GovPropose: &state.GovPropose{ID: "p-param", SetParam: &state.Param{Name: state.ParamMaxBlockTxs, Value: 500}}},
		state.TxBody{GovPropose: &state.GovPropose{ID: "p-val", EffectiveHeight: far,
			SetValidator: &state.Validator{Name: "newco", PubKey: newVal, PeerID: "12D3KooWnewco", Power: 2}}},
		state.TxBody{SetSigners: &state.SetSigners{Signers: [][]byte{key.Public().(ed25519.PublicKey), cosigner}, Quorum: 1}},
	)

	acct, err := c.Account(ctx, me.String())
	if err != nil {
		t.Fatal(err)
	}
	if acct.Nonce != 18 || acct.Balance != 1000-50 || acct.Member != "acme" ||
		!slices.Equal(acct.Assets, []api.AssetBalance{{Symbol: "GLD", Amount: 70}}) ||
		acct.Signers == nil || acct.Signers.Quorum != 1 || len(acct.Signers.Signers) != 2 ||
		acct.Signers.Signers[1] != hex.EncodeToString(cosigner) {
		t.Errorf("account: %+v signers %+v", acct, acct.Signers)
	}
	if o, err := c.Account(ctx, other.String()); err != nil || o.Balance != 50 || o.Member != "" || o.Signers != nil ||
		!slices.Equal(o.Assets, []api.AssetBalance{{Symbol: "GLD", Amount: 30}}) {
		t.Errorf("other account: %+v %v", o, err)
	}

	if a, err := c.Asset(ctx, "GLD"); err != nil || a.Supply != 100 || a.MaxSupply != 1000 || a.Issuer != me.String() || a.Decimals != 2 || a.Name != "Gold" {
		t.Errorf("asset: %+v %v", a, err)
	}

	it, err := c.Item(ctx, "diamond-1")
	if err != nil || it.Owner != other.String() || it.Registrar != me.String() || it.MetadataHash != hex.EncodeToString(doc[:]) || len(it.History) != 2 ||
		it.History[0].Event != state.EventRegister || it.History[1].Event != state.EventTransfer ||
		it.History[1].From != me.String() || it.History[1].To != other.String() || it.History[1].Height < it.History[0].Height {
		t.Errorf("item: %+v %v", it, err)
	}

	id, err := c.Identity(ctx, "acme-org")
	if err != nil || id.Kind != state.KindOrganization || id.Controller != me.String() ||
		!slices.Equal(id.Keys, []string{hex.EncodeToString(key.Public().(ed25519.PublicKey))}) {
		t.Errorf("identity: %+v %v", id, err)
	}

	if cl, err := c.Claim(ctx, "kyc-1"); err != nil || cl.Status != api.ClaimValid || cl.Issuer != "acme-org" ||
		cl.IssuerName != "Acme" || cl.IssuedBy != me.String() || cl.Subject != "dana" || cl.AsOfHeight < cl.Height {
		t.Errorf("valid claim: %+v %v", cl, err)
	}
	if cl, err := c.Claim(ctx, "kyc-2"); err != nil || cl.Status != api.ClaimRevoked || !cl.Revoked {
		t.Errorf("revoked claim: %+v %v", cl, err)
	}

	if nr, err := c.Notary(ctx, hex.EncodeToString(doc[:])); err != nil || nr.By != me.String() || nr.Height == 0 || nr.TimeMs == 0 {
		t.Errorf("notary: %+v %v", nr, err)
	}

	if e, err := c.Escrow(ctx, "deal-1"); err != nil || e.Status != state.EscrowReleased || e.Preimage != hex.EncodeToString(secret) ||
		e.HashLock != lock.String() || e.Amount != 50 {
		t.Errorf("escrow: %+v %v", e, err)
	}

	if b, err := c.Ballot(ctx, "vote-1"); err != nil || b.Votes != 1 || b.Closed || !slices.Equal(b.Tally, []uint64{0, 1}) ||
		!slices.Equal(b.Options, []string{"Lisbon", "Oslo"}) {
		t.Errorf("ballot: %+v %v", b, err)
	}

	ps, err := c.Proposals(ctx, "")
	if err != nil || len(ps.Proposals) != 2 || ps.Members != 1 || ps.Threshold != apiThreshold(state.DefaultThreshold) {
		t.Fatalf("proposals: %+v %v", ps, err)
	}
	if p := ps.Proposals[1]; p.ID != "p-val" || p.Status != state.ProposalPassed || p.SetValidator == nil ||
		p.SetValidator.PubKey != hex.EncodeToString(newVal) || !slices.Equal(p.Yes, []string{"acme"}) {
		t.Errorf("validator proposal: %+v", p)
	}
	if open, err := c.Proposals(ctx, state.ProposalOpen); err != nil || len(open.Proposals) != 0 {
		t.Errorf("open proposals: %+v %v", open, err)
	}
	if p, err := c.Proposal(ctx, "p-param"); err != nil || p.Status != state.ProposalPassed || p.SetParam == nil || p.SetParam.Value != 500 {
		t.Errorf("param proposal: %+v %v", p, err)
	}
	if pr, err := c.Params(ctx); err != nil || !slices.Contains(pr.Params, api.Param{Name: state.ParamMaxBlockTxs, Value: 500}) {
		t.Errorf("params: %+v %v", pr, err)
	}
	if m, err := c.Members(ctx); err != nil || len(m.Members) != 1 || m.Members[0].Name != "acme" || m.Members[0].Controller != me.String() {
		t.Errorf("members: %+v %v", m, err)
	}

	vs, err := c.Validators(ctx)
	if err != nil || len(vs.Current.Validators) != 1 || vs.Current.TotalPower != 1 || len(vs.Scheduled) != 1 {
		t.Fatalf("validators: %+v %v", vs, err)
	}
	if s := vs.Scheduled[0]; s.Height != far || len(s.Validators) != 2 || s.TotalPower != 3 ||
		!slices.ContainsFunc(s.Validators, func(v api.ValidatorJSON) bool { return v.Name == "newco" && v.PubKey == hex.EncodeToString(newVal) }) {
		t.Errorf("scheduled validators: %+v", s)
	}

	// What does not exist is 404, what cannot be an ID is 400.
	notFound := map[string]func() error{
		"asset":    func() error { _, err := c.Asset(ctx, "NOPE"); return err },
		"item":     func() error { _, err := c.Item(ctx, "nope"); return err },
		"identity": func() error { _, err := c.Identity(ctx, "nope"); return err },
		"claim":    func() error { _, err := c.Claim(ctx, "nope"); return err },
		"notary":   func() error { _, err := c.Notary(ctx, hex.EncodeToString(make([]byte, 32))); return err },
		"escrow":   func() error { _, err := c.Escrow(ctx, "nope"); return err },
		"ballot":   func() error { _, err := c.Ballot(ctx, "nope"); return err },
		"proposal": func() error { _, err := c.Proposal(ctx, "nope"); return err },
	}
	for what, get := range notFound {
		var ae *api.Error
		if err := get(); !errors.Is(err, api.ErrNotFound) || !errors.As(err, &ae) || ae.Message == "" {
			t.Errorf("unknown %s: want 404 with a message, got %v", what, err)
		}
	}
	malformed := map[string]func() error{
		"asset":     func() error { _, err := c.Asset(ctx, "gld"); return err },
		"item":      func() error { _, err := c.Item(ctx, "a b"); return err },
		"identity":  func() error { _, err := c.Identity(ctx, "x/y"); return err },
		"claim":     func() error { _, err := c.Claim(ctx, string(make([]byte, 65))); return err },
		"notary":    func() error { _, err := c.Notary(ctx, "abc"); return err },
		"escrow":    func() error { _, err := c.Escrow(ctx, "a%b"); return err },
		"ballot":    func() error { _, err := c.Ballot(ctx, "é"); return err },
		"proposal":  func() error { _, err := c.Proposal(ctx, "a?b"); return err },
		"proposals": func() error { _, err := c.Proposals(ctx, "maybe"); return err },
	}
	for what, get := range malformed {
		if err := get(); !isStatus(err, 400) {
			t.Errorf("malformed %s: want 400, got %v", what, err)
		}
	}
}

// A claim past its expiry reads as expired, judged by the latest block's time.
func TestClaimExpiresByBlockTime(t *testing.T) {
	c, key, chainID := startSoloMember(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	expires := time.Now().Add(1500 * time.Millisecond).UnixMilli()
	commitAll(t, ctx, c, chainID, key, 0,
		state.TxBody{IdentityRegister: &state.IdentityRegister{ID: "bank", Kind: state.KindOrganization}},
		state.TxBody{ClaimIssue: &state.ClaimIssue{ID: "short", Issuer: "bank", Subject: "bank", Schema: "s", ExpiresMs: expires}},
	)
	for {
		cl, err := c.Claim(ctx, "short")
		if err != nil {
			t.Fatal(err)
		}
		if cl.AsOfTimeMs >= expires {
			if cl.Status != api.ClaimExpired {
				t.Fatalf("at block time %d, claim expiring at %d is %s", cl.AsOfTimeMs, expires, cl.Status)
			}
			return
		}
		if cl.Status != api.ClaimValid {
			t.Fatalf("at block time %d, claim expiring at %d is %s", cl.AsOfTimeMs, expires, cl.Status)
		}
		// Blocks come every 200 ms on this node: wait for the next one rather than a fixed time.
		if _, err := c.BlockWait(ctx, cl.AsOfHeight+1, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}
