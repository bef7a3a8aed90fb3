package testnet

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/state/kv"
	"github.com/guild-ledger/guild/wallet"
)

// Private payloads on real processes (issue 14). Four organizations register encryption keys;
// with node4 down, org1 sends a payload to org2 and org4: node2 gets it at once, node4 fetches it
// after its restart, and node3 (no recipient) never receives a byte of it (its store, its stream
// counters and its log say so) and its API refuses it. A tampered ciphertext is refused against
// the commitment, a payload naming an unknown member is rejected on chain, and a payload with an
// expiry is purged from every holder's node at that height while its commitment still verifies
// a disclosed copy.
func TestPrivatePayloads(t *testing.T) {
	tn := startTestnetWith(t, 90*time.Second, func(c *node.Config) {
		c.Consensus.EmptyBlockMillis = 100
		c.Consensus.ViewTimeoutMillis = 600
	})
	ctx, m, cl := tn.ctx, tn.m, tn.clients
	st, err := cl[0].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	orgs := map[string]*privOrg{}
	for i, name := range []string{"org1", "org2", "org3", "org4"} {
		key, addr, err := m.LoadWalletKey(name, testPassphrase)
		if err != nil {
			t.Fatal(err)
		}
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		orgs[name] = &privOrg{name: name, key: key, addr: addr, id: id, c: cl[i]}
	}
	g := &govDriver{t: t, ctx: ctx, chainID: st.ChainID, c: cl[0]}
	var hashes []state.Hash
	for _, o := range orgs {
		hashes = append(hashes, g.send(&govMember{key: o.key, addr: o.addr},
			state.TxBody{EncryptionKeySet: &state.EncryptionKeySet{Member: o.name, Key: o.id.Recipient().String()}}))
	}
	for _, h := range hashes {
		g.wait(h)
	}

	// node4 goes down; org1 sends to org2 and org4.
	if _, err := Kill(tn.dir, 4); err != nil {
		t.Fatal(err)
	}
	secret := []byte("price per tonne: 412.50 EUR")
	ct, c1, err := wallet.Seal(secret, []string{orgs["org1"].id.Recipient().String(), orgs["org2"].id.Recipient().String(), orgs["org4"].id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	p1 := state.PrivateSend{Commitment: c1, Recipients: []string{"org2", "org4"}, Size: uint64(len(ct))}
	sendPrivate(t, g, orgs["org1"], p1, ct)

	// node2 has it at once, and org2 reads and decrypts it through its own node.
	waitFor(t, ctx, "node2 to hold the payload", func() bool { return orgs["org2"].holds(ctx, c1) })
	got, err := orgs["org2"].c.PrivateCiphertext(ctx, st.ChainID, c1, orgs["org2"].key)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := wallet.Unseal(got, c1, []age.Identity{orgs["org2"].id}); err != nil || string(plain) != string(secret) {
		t.Fatalf("org2 reads %q, %v", plain, err)
	}
	// org3's node shows the commitment only, and refuses the ciphertext to anyone.
	rec, err := cl[2].PrivateRecord(ctx, c1.String())
	if err != nil || rec.Held || rec.SenderMember != "org1" {
		t.Fatalf("node3's view of the record: %+v, %v", rec, err)
	}
	for _, who := range []string{"org3", "org2"} {
		_, err := cl[2].PrivateCiphertext(ctx, st.ChainID, c1, orgs[who].key)
		if code := api.ErrorCode(err); code != api.CodeForbidden {
			t.Fatalf("node3 serving the ciphertext to %s: %v (code %q), want 403 forbidden", who, err, code)
		}
	}
	// Neither can org3 read it through the sender's node.
	if _, err := cl[0].PrivateCiphertext(ctx, st.ChainID, c1, orgs["org3"].key); api.ErrorCode(err) != api.CodeForbidden {
		t.Fatalf("node1 serving the ciphertext to org3: %v", err)
	}

	// A tampered ciphertext is refused against the commitment.
	tampered := append([]byte(nil), ct...)
	tampered[len(tampered)-1] ^= 1
	ct2, c2, _ := wallet.Seal([]byte("x"), []string{orgs["org2"].id.Recipient().String()})
	if _, err := orgs["org1"].c.SubmitPrivate(ctx, g.sign(orgs["org1"], state.TxBody{PrivateSend: &state.PrivateSend{
		Commitment: c2, Recipients: []string{"org2"}, Size: uint64(len(ct2))}}), tampered[:len(ct2)]); err == nil ||
		!strings.Contains(err.Error(), "commitment") {
		t.Fatalf("tampered ciphertext: %v", err)
	}
	// A payload naming an unknown member is rejected on chain, and its ciphertext dropped.
	resp, err := orgs["org1"].c.SubmitPrivate(ctx, g.sign(orgs["org1"], state.TxBody{PrivateSend: &state.PrivateSend{
		Commitment: c2, Recipients: []string{"org2", "org9"}, Size: uint64(len(ct2))}}), ct2)
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := cl[0].WaitTx(ctx, resp.Hash); err != nil || ts.Status != api.TxRejected || !strings.Contains(ts.Error, `"org9"`) {
		t.Fatalf("unknown recipient: %+v, %v", ts, err)
	}
	if _, err := cl[0].PrivateRecord(ctx, c2.String()); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("the rejected payload's record: %v", err)
	}
	waitFor(t, ctx, "node1 to drop the rejected payload", func() bool { return metric(t, cl[0], "guild_private_held") == 1 })

	// A payload to org2 that expires: purged on both holders' nodes at its height.
	ct3, c3, _ := wallet.Seal([]byte("valid until block h"), []string{orgs["org2"].id.Recipient().String()})
	expires := g.height() + 12
	sendPrivate(t, g, orgs["org1"], state.PrivateSend{Commitment: c3, Recipients: []string{"org2"}, Expires: expires, Size: uint64(len(ct3))}, ct3)
	waitFor(t, ctx, "node2 to hold the expiring payload", func() bool { return orgs["org2"].holds(ctx, c3) })
	if !orgs["org1"].holds(ctx, c3) {
		t.Fatal("the sender's node does not hold the expiring payload")
	}

	// node4 comes back and fetches what it missed.
	if _, _, err := Restart(ctx, tn.dir, 4, tn.bin); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "node4 to fetch the payload it missed", func() bool { return orgs["org4"].holds(ctx, c1) })
	if got, err := cl[3].PrivateCiphertext(ctx, st.ChainID, c1, orgs["org4"].key); err != nil || string(got) != string(ct) {
		t.Fatalf("node4's copy: %v", err)
	}

	waitHeights(t, ctx, cl[:3], expires)
	for _, o := range []*privOrg{orgs["org1"], orgs["org2"]} {
		waitFor(t, ctx, "node of "+o.name+" to purge the expired payload", func() bool { return !o.holds(ctx, c3) })
		_, err := o.c.PrivateCiphertext(ctx, st.ChainID, c3, o.key)
		if api.ErrorCode(err) != api.CodeGone {
			t.Fatalf("%s after expiry: %v, want 410 gone", o.name, err)
		}
		if v := metric(t, o.c, "guild_private_purged_total"); v < 1 {
			t.Fatalf("%s: guild_private_purged_total %v", o.name, v)
		}
	}
	// The commitment still proves a copy disclosed later.
	if r, err := cl[2].PrivateRecord(ctx, state.Hash(sha256.Sum256(ct3)).String()); err != nil || !r.Purged || r.Recipients[0] != "org2" {
		t.Fatalf("disclosed copy against node3's record: %+v, %v", r, err)
	}

	// node3 never received a byte: nothing held, no push or fetch served, nothing in its log.
	if v := metric(t, cl[2], "guild_private_held"); v != 0 {
		t.Fatalf("node3 holds %v payloads", v)
	}
	if v := metric(t, cl[2], "guild_private_received_total"); v != 0 {
		t.Fatalf("node3 received %v payloads", v)
	}
	if v := metric(t, cl[2], `guild_private_stream_requests_total{kind="push",status="ok"}`); v != 0 {
		t.Fatalf("node3 took %v pushes", v)
	}
	log, err := os.ReadFile(filepath.Join(m.Nodes[2].Home, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "private payload received") || strings.Contains(string(log), c1.String()[:16]) {
		t.Fatalf("node3's log mentions receiving a private payload")
	}
	if v := metric(t, cl[3], "guild_private_received_total"); v != 1 {
		t.Fatalf("node4 received %v payloads, want 1 (the one it missed)", v)
	}
	// And its private store, read once the node is stopped, holds no key at all.
	if _, err := Kill(tn.dir, 3); err != nil {
		t.Fatal(err)
	}
	var db kv.Store
	waitFor(t, ctx, "node3's private store to be free", func() bool { // its lock goes with the process
		db, err = kv.OpenWith(kv.PebbleDB, filepath.Join(m.Nodes[2].Home, node.DataDir), "private", kv.Options{})
		return err == nil
	})
	defer db.Close()
	it, err := db.Iterator(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if it.Valid() {
		t.Fatalf("node3's private store holds %q", it.Key())
	}
}

type privOrg struct {
	name string
	key  ed25519.PrivateKey
	addr state.Address
	id   *age.X25519Identity
	c    *api.Client
}

func (o *privOrg) holds(ctx context.Context, c state.Hash) bool {
	r, err := o.c.PrivateRecord(ctx, c.String())
	return err == nil && r.Held
}

// sign signs body from o at its next nonce.
func (g *govDriver) sign(o *privOrg, body state.TxBody) []byte {
	g.t.Helper()
	acc, err := g.c.Account(g.ctx, o.addr.String())
	if err != nil {
		g.t.Fatal(err)
	}
	body.ChainID, body.From, body.Nonce = g.chainID, o.addr, acc.NextNonce
	raw, _, err := signTx(body, o.key)
	if err != nil {
		g.t.Fatal(err)
	}
	return raw
}

// sendPrivate submits p with its ciphertext through o's own node and waits for it to commit.
func sendPrivate(t *testing.T, g *govDriver, o *privOrg, p state.PrivateSend, ct []byte) {
	t.Helper()
	resp, err := o.c.SubmitPrivate(g.ctx, g.sign(o, state.TxBody{PrivateSend: &p}), ct)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := o.c.WaitTx(g.ctx, resp.Hash)
	if err != nil || ts.Status != api.TxCommitted {
		t.Fatalf("private transaction: %+v, %v", ts, err)
	}
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// metric reads one sample (name with its labels, as exposed) from a node's /metrics; 0 if absent.
func metric(t *testing.T, c *api.Client, sample string) float64 {
	t.Helper()
	resp, err := http.Get(c.Base() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(fmt.Errorf("metric %s: %w", sample, err))
			}
			return f
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	return 0
}
