package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// addMember adds a member named name, with a new controller key, to home's genesis.
func addMember(t *testing.T, home, name string) ed25519.PrivateKey {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	gen.Members = append(gen.Members, state.Member{Name: name, Controller: state.AddressFromPubKey(key.Public().(ed25519.PublicKey))})
	if err := gen.Save(filepath.Join(home, GenesisFile)); err != nil {
		t.Fatal(err)
	}
	return key
}

func ageRecipient(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

// privateBody is a submit-private request body: body (with its payload's commitment and size
// filled in from ct) signed by key at nonce.
func privateBody(t *testing.T, chainID string, key ed25519.PrivateKey, nonce uint64, b state.TxBody, ct []byte) string {
	t.Helper()
	op, _ := privateOp(&b)
	op.Commitment, op.Size = sha256.Sum256(ct), uint64(len(ct))
	raw := signedRaw(t, chainID, key, nonce, b)
	j, _ := json.Marshal(api.SubmitPrivateRequest{Tx: hex.EncodeToString(raw), Ciphertext: hex.EncodeToString(ct)})
	return string(j)
}

// private checks the private payload operations against the document: acme (this node's
// member, key) sends to bolt (boltKey), whose node is none.
func (c *contract) private(ctx context.Context, cl *api.Client, chainID string, key, boltKey ed25519.PrivateKey) {
	t := c.t
	t.Helper()
	acct, err := cl.Account(ctx, state.AddressFromPubKey(key.Public().(ed25519.PublicKey)).String())
	if err != nil {
		t.Fatal(err)
	}
	nonce := &acct.NextNonce
	commitAll(t, ctx, cl, chainID, key, *nonce, state.TxBody{EncryptionKeySet: &state.EncryptionKeySet{Member: "acme", Key: ageRecipient(t)}})
	*nonce++
	commitAll(t, ctx, cl, chainID, boltKey, 0, state.TxBody{EncryptionKeySet: &state.EncryptionKeySet{Member: "bolt", Key: ageRecipient(t)}})
	bolt := state.AddressFromPubKey(boltKey.Public().(ed25519.PublicKey))
	ct := []byte("age ciphertext, as far as the node knows")
	ct2 := []byte("the terms of a private escrow")
	ct3 := []byte("short-lived")
	expires := c.height(ctx, cl) + 20
	var subs []api.SubmitPrivateResponse
	for _, b := range []struct {
		body state.TxBody
		ct   []byte
	}{
		{state.TxBody{PrivateSend: &state.PrivateSend{Recipients: []string{"bolt"}}}, ct},
		{state.TxBody{PrivateEscrowCreate: &state.PrivateEscrowCreate{ID: "secret-deal", Beneficiary: bolt,
			Deadline: expires + 1000, Private: state.PrivateSend{Recipients: []string{"bolt"}}}}, ct2},
		{state.TxBody{PrivateSend: &state.PrivateSend{Recipients: []string{"bolt"}, Expires: expires}}, ct3},
	} {
		var sub api.SubmitPrivateResponse
		if err := json.Unmarshal(c.do(exchange{method: "POST", path: "/v1/private", want: []int{202},
			body: privateBody(t, chainID, key, *nonce, b.body, b.ct)}), &sub); err != nil {
			t.Fatal(err)
		}
		*nonce++
		subs = append(subs, sub)
	}
	for _, sub := range subs {
		if ts, err := cl.WaitTx(ctx, sub.Hash); err != nil || ts.Status != api.TxCommitted {
			t.Fatalf("private transaction: %+v %v", ts, err)
		}
	}
	// Refusals: a ciphertext that is not the committed one; a payload of which this node's
	// member (acme) is no holder; not JSON.
	tampered := privateBody(t, chainID, key, *nonce, state.TxBody{PrivateSend: &state.PrivateSend{Recipients: []string{"bolt"}}}, []byte("x"))
	tampered = strings.Replace(tampered, `"ciphertext":"78"`, `"ciphertext":"79"`, 1)
	c.do(exchange{method: "POST", path: "/v1/private", body: tampered, want: []int{400}})
	notOurs := privateBody(t, chainID, boltKey, 1, state.TxBody{PrivateSend: &state.PrivateSend{Recipients: []string{"bolt"}}}, []byte("y"))
	c.do(exchange{method: "POST", path: "/v1/private", body: notOurs, want: []int{403}})
	c.do(exchange{method: "POST", path: "/v1/private", body: `{"tx":"zz"}`, want: []int{400}, docRejects: true})

	c.do(exchange{method: "GET", path: "/v1/private", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/private?member=bolt", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/private/" + subs[0].Commitment, want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/private/" + strings.Repeat("ab", 32), want: []int{404}})
	c.do(exchange{method: "GET", path: "/v1/private/xyz", want: []int{400}, docRejects: true})
	signed := func(k ed25519.PrivateKey, commitment string) http.Header {
		h := http.Header{}
		cm, _ := state.ParseHash(commitment)
		api.SignPrivateRead(h, k, chainID, cm, time.Now().UnixMilli())
		return h
	}
	path := "/v1/private/" + subs[0].Commitment + "/ciphertext"
	var got api.PrivateCiphertext
	if err := json.Unmarshal(c.do(exchange{method: "GET", path: path, header: signed(key, subs[0].Commitment), want: []int{200}}), &got); err != nil || got.Ciphertext != hex.EncodeToString(ct) {
		t.Fatalf("ciphertext %+v %v", got, err)
	}
	c.do(exchange{method: "GET", path: path, header: signed(boltKey, subs[0].Commitment), want: []int{200}}) // a recipient's key
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	c.do(exchange{method: "GET", path: path, header: signed(stranger, subs[0].Commitment), want: []int{403}})
	c.do(exchange{method: "GET", path: path, header: signed(key, subs[1].Commitment), want: []int{403}}) // signed for another payload
	c.do(exchange{method: "GET", path: path, want: []int{403}})
	c.do(exchange{method: "GET", path: "/v1/private/" + strings.Repeat("ab", 32) + "/ciphertext", want: []int{404}})
	for c.height(ctx, cl) < expires {
		if _, err := cl.BlockWait(ctx, expires, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	c.do(exchange{method: "GET", path: "/v1/private/" + subs[2].Commitment + "/ciphertext", header: signed(key, subs[2].Commitment), want: []int{410}})

	c.do(exchange{method: "GET", path: "/v1/encryption-keys", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/encryption-keys/member:acme", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/encryption-keys/member:nobody", want: []int{404}})
	c.do(exchange{method: "GET", path: "/v1/private-escrows/secret-deal", want: []int{200}})
	c.do(exchange{method: "GET", path: "/v1/private-escrows/nothing", want: []int{404}})
	c.do(exchange{method: "GET", path: "/v1/private-escrows/bad*id", want: []int{400}, docRejects: true})
}

func (c *contract) height(ctx context.Context, cl *api.Client) uint64 {
	st, err := cl.Status(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return st.Height
}
