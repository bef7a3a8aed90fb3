package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node/light"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/merkle"
)

// proofChain runs a solo member node, gives it a little of every kind of record, changes its
// validator set by governance, and returns the proof files it serves, by name, with its genesis.
type proofChain struct {
	genesis []byte
	files   map[string][]byte
	change  uint64 // height the validator set changed at
	second  uint64 // height it changed at again
}

func newProofChain(t *testing.T) *proofChain {
	t.Helper()
	home, key := memberHome(t, "memdb", nil)
	n, c, stop := runNode(t, home)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	chainID := n.chainID
	me := state.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	var other state.Address
	other[0] = 42
	doc := sha256.Sum256([]byte("a photo"))
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	vk, err := gen.Validators[0].Key()
	if err != nil {
		t.Fatal(err)
	}
	bodies := []state.TxBody{
		{NotaryAnchor: &state.NotaryAnchor{Hash: doc}},
		{ItemRegister: &state.ItemRegister{ID: "diamond-1", MetadataHash: doc}},
		{ItemTransfer: &state.ItemTransfer{ID: "diamond-1", To: other}},
		{IdentityRegister: &state.IdentityRegister{ID: "acme-org", Kind: state.KindOrganization, Name: "Acme"}},
		{IdentityRegister: &state.IdentityRegister{ID: "dana", Kind: state.KindPerson}},
		{ClaimIssue: &state.ClaimIssue{ID: "kyc-1", Issuer: "acme-org", Subject: "dana", Schema: "kyc/v1", ContentHash: doc}},
		{ClaimRevoke: &state.ClaimRevoke{ID: "kyc-1"}},
		{AssetCreate: &state.AssetCreate{Symbol: "GLD", Name: "Gold", Decimals: 2, MaxSupply: 1000}},
		{AssetMint: &state.AssetMint{Symbol: "GLD", To: me, Amount: 100}},
		{Transfer: &state.Transfer{To: other, Amount: 5}},
	}
	commitAll(t, ctx, c, chainID, key, 0, bodies...)
	pc := &proofChain{files: map[string][]byte{}}
	early := n.executedHeight()

	// The same validator with more power: a new set, which a light client must follow.
	pc.change = n.executedHeight() + 4
	commitAll(t, ctx, c, chainID, key, uint64(len(bodies)), state.TxBody{GovPropose: &state.GovPropose{ID: "more-power",
		EffectiveHeight: pc.change, SetValidator: &state.Validator{Name: gen.Validators[0].Name, PubKey: vk, PeerID: gen.Validators[0].PeerID, Power: 3}}})
	// Then a second validator, with a key the genesis does not know: power 3 of 4 still decides
	// alone, and a proof after it follows three sets.
	newVal, _, _ := ed25519.GenerateKey(nil)
	pc.second = pc.change + 4
	commitAll(t, ctx, c, chainID, key, uint64(len(bodies))+1, state.TxBody{GovPropose: &state.GovPropose{ID: "newco",
		EffectiveHeight: pc.second, SetValidator: &state.Validator{Name: "newco", PubKey: newVal, Power: 1}}})
	if _, err := c.BlockWait(ctx, pc.second+2, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	transferTx := signedRaw(t, chainID, key, 2, bodies[2])
	get := func(name string, fetch func() ([]byte, error)) {
		b, err := fetch()
		if err != nil {
			t.Fatalf("proof %s: %v", name, err)
		}
		pc.files[name] = b
	}
	for name, q := range map[string][]string{
		"account":       {state.KindAccount, me.String()},
		"balance":       {state.KindBalance, me.String(), "GLD"},
		"item":          {state.KindItem, "diamond-1"},
		"identity":      {state.KindIdentity, "dana"},
		"claim":         {state.KindClaim, "kyc-1"},
		"claim-unknown": {state.KindClaim, "kyc-9"},
		"notary":        {state.KindNotary, state.Hash(doc).String()},
		"notary-absent": {state.KindNotary, strings.Repeat("cd", 32)},
	} {
		get(name, func() ([]byte, error) { return c.StateProof(ctx, q[0], q[1:], nil) })
	}
	get("item-early", func() ([]byte, error) { return c.StateProof(ctx, state.KindItem, []string{"diamond-1"}, &early) })
	get("tx", func() ([]byte, error) { return c.TxProof(ctx, state.HashTx(transferTx).String()) })
	if pc.genesis, err = os.ReadFile(filepath.Join(home, GenesisFile)); err != nil {
		t.Fatal(err)
	}
	return pc
}

func verifyFile(t *testing.T, file, genesis []byte) (*light.Result, error) {
	t.Helper()
	g, err := light.ParseGenesis(genesis)
	if err != nil {
		t.Fatal(err)
	}
	f, err := light.Parse(file)
	if err != nil {
		return nil, err
	}
	return light.Verify(f, g)
}

// Every kind of proof a node serves verifies offline against the genesis alone, after a
// validator set change; any change to a file fails, with the reason it deserves.
func TestProofsVerifyOffline(t *testing.T) {
	pc := newProofChain(t)
	for name, file := range pc.files {
		res, err := verifyFile(t, file, pc.genesis)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		absent := strings.HasSuffix(name, "-unknown") || strings.HasSuffix(name, "-absent")
		if name != "tx" && res.Present == absent {
			t.Fatalf("%s: present %v", name, res.Present)
		}
		want := 1
		switch {
		case res.Height+1 >= pc.second:
			want = 3
		case res.Height+1 >= pc.change:
			want = 2
		}
		if res.Epochs != want {
			t.Fatalf("%s: height %d, %d validator sets followed, want %d", name, res.Height, res.Epochs, want)
		}
	}
	var claim state.Claim
	if res, _ := verifyFile(t, pc.files["claim"], pc.genesis); state.Unmarshal(res.Value, &claim) != nil || !claim.Revoked {
		t.Fatalf("claim proof: %+v", claim)
	}
	if res, _ := verifyFile(t, pc.files["tx"], pc.genesis); !res.Applied {
		t.Fatal("the item transfer's receipt says rejected")
	}
	var item state.Item
	if res, _ := verifyFile(t, pc.files["item-early"], pc.genesis); state.Unmarshal(res.Value, &item) != nil || item.Owner == (state.Address{}) || res.Epochs != 1 {
		t.Fatalf("item before the change: %+v", item)
	}

	// Flipping any byte fails, with one of the named reasons (never "ok", never "other").
	for _, name := range []string{"tx", "claim-unknown"} {
		file := pc.files[name]
		for i := range file {
			bad := append([]byte(nil), file...)
			bad[i] ^= 0x01
			_, err := verifyFile(t, bad, pc.genesis)
			if code := light.ExitCode(err); code < 3 {
				t.Fatalf("%s with byte %d flipped: %v (exit %d): %s", name, i, err, code, file[max(0, i-300):i+20])
			}
		}
	}
}

// Each way a proof can fail has its reason: another chain's genesis, a forged signature, too few
// signers, a set the proof does not follow, a path that leads elsewhere.
func TestProofFailureReasons(t *testing.T) {
	pc := newProofChain(t)
	edit := func(name string, change func(f *light.File)) []byte {
		f, err := light.Parse(pc.files[name])
		if err != nil {
			t.Fatal(err)
		}
		change(f)
		b, err := f.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cert := func(f *light.File, change func(c *consensus.Certificate)) {
		var c consensus.Certificate
		if err := state.Unmarshal(f.Anchor.Certificate, &c); err != nil {
			t.Fatal(err)
		}
		change(&c)
		b, err := state.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		f.Anchor.Certificate = b
	}
	var other map[string]any
	if err := json.Unmarshal(pc.genesis, &other); err != nil {
		t.Fatal(err)
	}
	other["chain_id"] = "another-chain"
	otherGenesis, _ := json.Marshal(other)

	for _, c := range []struct {
		name    string
		file    []byte
		genesis []byte
		want    error
	}{
		{"another chain's genesis", pc.files["claim"], otherGenesis, light.ErrWrongChain},
		{"forged signature", edit("claim", func(f *light.File) {
			cert(f, func(c *consensus.Certificate) { c.Votes[0].Sig[0] ^= 1 })
		}), nil, light.ErrBadSignature},
		{"no signers", edit("claim", func(f *light.File) {
			cert(f, func(c *consensus.Certificate) { c.Votes = nil })
		}), nil, light.ErrTooFewSigners},
		{"block changed", edit("claim", func(f *light.File) {
			var b Block
			if err := state.Unmarshal(f.Anchor.Block, &b); err != nil {
				t.Fatal(err)
			}
			b.Header.Time++
			f.Anchor.Block, _ = b.Encode()
		}), nil, light.ErrBadSignature},
		{"validator change left out", edit("claim", func(f *light.File) { f.Validators = nil }), nil, light.ErrUnknownValidatorSet},
		{"last validator change left out", edit("claim", func(f *light.File) { f.Validators = f.Validators[:1] }), nil, light.ErrUnknownValidatorSet},
		{"validator changes swapped", edit("claim", func(f *light.File) { f.Validators[0], f.Validators[1] = f.Validators[1], f.Validators[0] }), nil, light.ErrUnknownValidatorSet},
		{"value changed", edit("claim", func(f *light.File) { f.State.Value[0] ^= 1 }), nil, light.ErrPathMismatch},
		// The other key's leaf, where the absence proof ends at one, goes too: kept, the claim
		// contradicts it (malformed), and whether there is one depends on the keys in the tree.
		{"absent made present", edit("claim-unknown", func(f *light.File) {
			f.State.Present, f.State.OtherKeyHash, f.State.OtherValueHash = true, nil, nil
		}), nil, light.ErrPathMismatch},
		{"sibling changed", edit("item", func(f *light.File) { f.State.Siblings[0][0] ^= 1 }), nil, light.ErrPathMismatch},
		{"receipt status changed", edit("tx", func(f *light.File) { f.Tx.Applied = false }), nil, light.ErrPathMismatch},
		// An RFC 6962 path proves a leaf for several tree sizes: a count the path alone accepts
		// must still be refused, by the transaction's block (version 1 took it: a flaky byte flip).
		{"receipt count changed", edit("tx", func(f *light.File) { f.Tx.Count = otherCount(t, f) }), nil, light.ErrPathMismatch},
		{"transaction's block swapped", edit("tx", func(f *light.File) { f.Tx.Block = f.Anchor.Block }), nil, light.ErrPathMismatch},
		{"wrong version", edit("tx", func(f *light.File) { f.Version = light.Version + 1 }), nil, light.ErrMalformed},
		{"reformatted", []byte(strings.ReplaceAll(string(pc.files["tx"]), "  ", "\t")), nil, light.ErrMalformed},
	} {
		g := c.genesis
		if g == nil {
			g = pc.genesis
		}
		_, err := verifyFile(t, c.file, g)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if code := light.ExitCode(err); code < 3 || code != light.ExitCode(c.want) {
			t.Errorf("%s: exit code %s", c.name, strconv.Itoa(code))
		}
	}
}

// otherCount is a transaction count other than f's that its receipt path alone verifies for,
// if there is one (there is whenever the transaction sits in a complete left subtree), else
// one more than its count.
func otherCount(t *testing.T, f *light.File) uint64 {
	t.Helper()
	b, err := DecodeBlock(f.Anchor.Block)
	if err != nil {
		t.Fatal(err)
	}
	path := make([]merkle.Hash, len(f.Tx.Path))
	for i := range f.Tx.Path {
		path[i] = merkle.Hash(f.Tx.Path[i])
	}
	for n := f.Tx.Index + 1; n <= 2*f.Tx.Count; n++ {
		if n != f.Tx.Count && merkle.VerifyReceipt(merkle.Hash(b.Header.ReceiptsRoot), f.Tx.Index, n, merkle.Hash(f.Tx.Hash), f.Tx.Applied, path) == nil {
			t.Logf("receipt %d of %d also verifies as of %d by its path alone", f.Tx.Index, f.Tx.Count, n)
			return n
		}
	}
	return f.Tx.Count + 1
}
