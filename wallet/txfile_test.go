package wallet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/guild-ledger/guild/state"
)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// A transaction saved by one officer and co-signed by another from the file is the same
// transaction as one signed by both at once: same bytes, same hash.
func TestTxFileCoSigningRoundTrip(t *testing.T) {
	alice, bob := newKey(t), newKey(t)
	var treasury, to state.Address
	treasury[0], to[0] = 1, 2
	body, err := AssetTransfer(Header{ChainID: "c1", From: treasury, Nonce: 3}, state.AssetTransfer{Symbol: "USDG", To: to, Amount: 250})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := Sign(body, alice)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pay.json")
	if err := WriteTxFile(path, tx); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTxFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := AddSignature(got, bob); err != nil {
		t.Fatal(err)
	}
	if err := AddSignature(got, bob); err == nil {
		t.Fatal("a key signed twice")
	}
	if err := WriteTxFile(path, got); err != nil {
		t.Fatal(err)
	}
	final, err := ReadTxFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, hash, err := Encode(final)
	if err != nil {
		t.Fatal(err)
	}
	both, _ := Sign(body, alice, bob)
	wantRaw, wantHash, _ := Encode(both)
	if !bytes.Equal(raw, wantRaw) || hash != wantHash {
		t.Fatal("co-signed through a file differs from signed at once")
	}
	dec, err := state.DecodeTx(raw)
	if err != nil || len(dec.Sigs) != 2 || dec.Body.AssetTransfer.Amount != 250 || dec.Body.From != treasury {
		t.Fatalf("decoded %+v %v", dec, err)
	}
}

// A file changed after it was signed is refused, whatever was changed; the readable copy of the
// operation is not trusted.
func TestTxFileRefusesTampering(t *testing.T) {
	alice := newKey(t)
	from := state.AddressFromPubKey(pub(alice))
	var to state.Address
	to[0] = 2
	body, err := AssetTransfer(Header{ChainID: "c1", From: from}, state.AssetTransfer{Symbol: "USDG", To: to, Amount: 250})
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := Sign(body, alice)
	data, err := MarshalTxFile(tx)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	// The body for another amount, with alice's signature over the old one.
	other := body
	op := *body.AssetTransfer
	op.Amount = 999
	other.AssetTransfer = &op
	enc, _ := state.Marshal(&other)

	for name, edit := range map[string]func(m map[string]any){
		"body changed":  func(m map[string]any) { m["body"] = hex.EncodeToString(enc) },
		"signature bit": func(m map[string]any) { flipSig(m) },
		"format":        func(m map[string]any) { m["format"] = "guild-tx/0" },
		"body not hex":  func(m map[string]any) { m["body"] = "zz" },
		"body empty":    func(m map[string]any) { m["body"] = "" },
		"duplicate sig": func(m map[string]any) { s := m["signatures"].([]any); m["signatures"] = append(s, s[0]) },
		"no operation": func(m map[string]any) {
			b, _ := state.Marshal(&state.TxBody{ChainID: "c1"})
			m["body"] = hex.EncodeToString(b)
		},
		"truncated key": func(m map[string]any) { m["signatures"].([]any)[0].(map[string]any)["pub_key"] = "abcd" },
		"not canonical": func(m map[string]any) {
			m["body"] = hex.EncodeToString(append([]byte{0xd9, 0xd9, 0xf7}, mustMarshal(t, &body)...))
		},
		"too many sigs": func(m map[string]any) { s := m["signatures"].([]any); m["signatures"] = append(s, make([]any, 16)...) },
	} {
		m := map[string]any{}
		_ = json.Unmarshal(data, &m)
		edit(m)
		bad, _ := json.Marshal(m)
		if _, err := UnmarshalTxFile(bad); !errors.Is(err, ErrBadTxFile) {
			t.Errorf("%s: want ErrBadTxFile, got %v", name, err)
		}
	}

	// Editing only the readable copy changes nothing: it is rewritten from the body.
	m := map[string]any{}
	_ = json.Unmarshal(data, &m)
	m["operation"] = map[string]any{"AssetTransfer": map[string]any{"Amount": 999}}
	edited, _ := json.Marshal(m)
	got, err := UnmarshalTxFile(edited)
	if err != nil || got.Body.AssetTransfer.Amount != 250 {
		t.Fatalf("edited readable copy: %+v %v", got, err)
	}
}

func flipSig(m map[string]any) {
	s := m["signatures"].([]any)[0].(map[string]any)
	b, _ := hex.DecodeString(s["sig"].(string))
	b[0] ^= 1
	s["sig"] = hex.EncodeToString(b)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := state.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadTxFileLimitsSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(path, bytes.Repeat([]byte(" "), maxTxFileBytes+10), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTxFile(path); !errors.Is(err, ErrBadTxFile) {
		t.Fatalf("want ErrBadTxFile, got %v", err)
	}
}

// The builders catch what a wallet can see without state, with the state machine's sentinels.
func TestBuildersRefuseWhatStateWould(t *testing.T) {
	var me, to state.Address
	me[0], to[0] = 1, 2
	h := Header{ChainID: "c1", From: me}
	lock := state.Hash{1}
	for name, tc := range map[string]struct {
		build func() (state.TxBody, error)
		want  error
	}{
		"no chain":   {func() (state.TxBody, error) { return NotaryAnchor(Header{From: me}, state.NotaryAnchor{Hash: lock}) }, ErrNoChainID},
		"zero mint":  {func() (state.TxBody, error) { return AssetMint(h, state.AssetMint{Symbol: "GLD", To: to}) }, state.ErrBadAmount},
		"bad symbol": {func() (state.TxBody, error) { return AssetCreate(h, state.AssetCreate{Symbol: "gld", Name: "x"}) }, state.ErrBadSymbol},
		"too many decimals": {func() (state.TxBody, error) {
			return AssetCreate(h, state.AssetCreate{Symbol: "GLD", Name: "x", Decimals: 19})
		}, state.ErrBadField},
		"send to self": {func() (state.TxBody, error) {
			return AssetTransfer(h, state.AssetTransfer{Symbol: "GLD", To: me, Amount: 1})
		}, state.ErrSelfTransfer},
		"bad item ID": {func() (state.TxBody, error) { return ItemRegister(h, state.ItemRegister{ID: "a b"}) }, state.ErrBadID},
		"zero anchor": {func() (state.TxBody, error) { return NotaryAnchor(h, state.NotaryAnchor{}) }, state.ErrBadField},
		"escrow unguarded": {func() (state.TxBody, error) {
			return EscrowCreate(h, state.EscrowCreate{ID: "e", Beneficiary: to, Amount: 1, Deadline: 9})
		}, state.ErrBadField},
		"escrow no deadline": {func() (state.TxBody, error) {
			return EscrowCreate(h, state.EscrowCreate{ID: "e", Beneficiary: to, Amount: 1, HashLock: &lock})
		}, state.ErrBadHeight},
		"device no owner": {func() (state.TxBody, error) {
			return IdentityRegister(h, state.IdentityRegister{ID: "d", Kind: state.KindDevice})
		}, state.ErrBadField},
		"unknown kind": {func() (state.TxBody, error) {
			return IdentityRegister(h, state.IdentityRegister{ID: "d", Kind: "robot"})
		}, state.ErrBadField},
		"one option": {func() (state.TxBody, error) {
			return BallotCreate(h, state.BallotCreate{ID: "b", Options: []string{"a"}, Eligible: []string{"x"}})
		}, state.ErrBadField},
		"two changes": {func() (state.TxBody, error) {
			return GovPropose(h, state.GovPropose{ID: "p", RemoveMember: "a", SetParam: &state.Param{}})
		}, state.ErrBadField},
		"quorum too high": {func() (state.TxBody, error) {
			return SetSigners(h, state.SetSigners{Signers: [][]byte{make([]byte, 32)}, Quorum: 2})
		}, state.ErrBadSigners},
	} {
		b, err := tc.build()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: want %v, got %v (%+v)", name, tc.want, err, b)
		}
	}
	b, err := EscrowCreate(h, state.EscrowCreate{ID: "e", Beneficiary: to, Amount: 1, HashLock: &lock, Deadline: 9})
	if err != nil || b.EscrowCreate == nil || b.From != me || b.ChainID != "c1" {
		t.Fatalf("valid escrow: %+v %v", b, err)
	}
}
