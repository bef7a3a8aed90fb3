package testnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

// TestWalkthrough runs the README's stories of issue 4 through the guild binary against a
// 4-validator testnet of real processes: a 2-of-3 treasury pays another company with a
// transaction co-signed offline, a diamond changes hands with its provenance on record, a KYC
// claim issued by one bank is verified (and, revoked, refused) by another, a photo is notarized,
// an escrow is released by its preimage, a ballot is tallied, and a fifth organization joins and
// gets a validator scheduled by governance. Each story's outcome is read back from every node.
func TestWalkthrough(t *testing.T) {
	tn := startTestnet(t, 120*time.Second)
	g := &guildCLI{t: t, tn: tn, node: tn.m.Nodes[0].API}
	work := t.TempDir()

	// New keys as `guild wallet new` makes them, at the tests' cheap work factor.
	ks, err := wallet.Open(tn.m.Wallet)
	if err != nil {
		t.Fatal(err)
	}
	ks.WorkFactor = testWorkFactor
	addr := map[string]state.Address{}
	for _, name := range []string{"treasury", "alice", "bob", "carol", "dana", "org5"} {
		e, err := ks.Create(name, testPassphrase)
		if err != nil {
			t.Fatal(err)
		}
		addr[name] = e.Address
	}
	for _, name := range tn.m.WalletKeys() {
		e, err := ks.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		addr[name] = e.Address
	}

	// 1. Intercompany payment from a 2-of-3 treasury.
	g.run("asset", "create", "USDG", "--name", "Guild dollar", "--decimals", "2", "--from", "org1", "--wait")
	g.run("asset", "mint", "USDG", "--to", "treasury", "--amount", "1000000", "--from", "org1", "--wait")
	g.run("account", "set-signers", "--from", "treasury", "--signer", "alice", "--signer", "bob", "--signer", "carol", "--quorum", "2", "--wait")
	pay := filepath.Join(work, "pay.json")
	// One officer alone cannot send from the treasury.
	g.fails("needs 2 signatures", "asset", "send", "USDG", "--account", "treasury", "--from", "alice", "--to", "org2", "--amount", "250000", "--wait")
	g.run("asset", "send", "USDG", "--account", "treasury", "--from", "alice", "--to", "org2", "--amount", "250000", "--out", pay)
	g.fails("do not authorise", "tx", "submit", pay, "--wait") // alice's signature alone
	g.run("tx", "sign", pay, "--from", "bob")
	var sub struct{ Hash, Status string }
	g.runJSON(&sub, "tx", "submit", pay, "--wait")
	var ts api.TxStatus
	caughtUp(t, tn) // what node 1 committed, before reading it through the others
	bankView := &guildCLI{t: t, tn: tn, node: tn.m.Nodes[3].API}
	bankView.runJSON(&ts, "tx", "status", sub.Hash)
	if sub.Status != api.TxCommitted || ts.Status != api.TxCommitted || ts.Height == 0 {
		t.Fatalf("treasury payment: submitted %+v, status on node 4 %+v", sub, ts)
	}
	g.fails("nonce", "tx", "submit", pay, "--wait") // a replay is refused
	for i, c := range tn.clients {
		tr, err1 := c.Account(tn.ctx, addr["treasury"].String())
		o2, err2 := c.Account(tn.ctx, addr["org2"].String())
		if err1 != nil || err2 != nil || !slices.Equal(tr.Assets, []api.AssetBalance{{Symbol: "USDG", Amount: 750000}}) ||
			!slices.Equal(o2.Assets, []api.AssetBalance{{Symbol: "USDG", Amount: 250000}}) || tr.Signers == nil || tr.Signers.Quorum != 2 {
			t.Fatalf("node %d: treasury %+v, org2 %+v (%v %v)", i+1, tr, o2, err1, err2)
		}
	}
	// Native currency from the treasury, this time with all three officers' signatures.
	g.run("wallet", "send", "--from", "faucet", "--to", "treasury", "--amount", "1000", "--wait")
	pay2 := filepath.Join(work, "pay2.json")
	g.run("account", "send", "--account", "treasury", "--from", "carol", "--to", "org3", "--amount", "400", "--out", pay2)
	g.run("tx", "sign", pay2, "--from", "alice", "--from", "bob")
	g.run("tx", "submit", pay2, "--wait")
	caughtUp(t, tn)
	if tr, err := tn.clients[2].Account(tn.ctx, addr["treasury"].String()); err != nil || tr.Balance != 600 || tr.Nonce != 3 {
		t.Fatalf("treasury after the native payment: %+v %v", tr, err)
	}
	var asset api.AssetResponse
	g.runJSON(&asset, "asset", "show", "USDG")
	if asset.Supply != 1000000 || asset.Issuer != addr["org1"].String() {
		t.Fatalf("asset: %+v", asset)
	}

	// 2. A diamond's provenance: miner (org1) to cutter (org2) to jeweller (org3).
	cert := writeFile(t, work, "cert.txt", "GIA report 2141438167: 1.01 ct, D, IF")
	g.run("item", "register", "diamond-2141438167", "--metadata-file", cert, "--from", "org1", "--wait")
	g.run("item", "transfer", "diamond-2141438167", "--to", "org2", "--from", "org1", "--wait")
	g.run("item", "transfer", "diamond-2141438167", "--to", "org3", "--from", "org2", "--wait")
	g.fails("not the owner", "item", "transfer", "diamond-2141438167", "--to", "org4", "--from", "org2", "--wait")
	var item api.ItemResponse
	g.runJSON(&item, "item", "history", "diamond-2141438167")
	certHash := sha256.Sum256([]byte("GIA report 2141438167: 1.01 ct, D, IF"))
	if item.Owner != addr["org3"].String() || item.MetadataHash != hex.EncodeToString(certHash[:]) || len(item.History) != 3 ||
		item.History[1].From != addr["org1"].String() || item.History[2].From != addr["org2"].String() || item.History[2].To != addr["org3"].String() {
		t.Fatalf("item: %+v", item)
	}

	// 3. A KYC claim issued by Bank A (org1), checked by Bank B (org2) on its own node.
	g.run("identity", "register", "bank-a", "--kind", "organization", "--name", "Bank A", "--from", "org1", "--wait")
	g.run("identity", "register", "dana", "--kind", "person", "--name", "Dana Smith", "--from", "dana", "--wait")
	kyc := writeFile(t, work, "dana-kyc.json", `{"name":"Dana Smith","passport":"X1234567"}`)
	g.run("claim", "issue", "kyc-dana-1", "--issuer", "bank-a", "--subject", "dana", "--schema", "kyc/v1",
		"--content-file", kyc, "--expires-in", "8760h", "--from", "org1", "--wait")
	caughtUp(t, tn)
	bankB := &guildCLI{t: t, tn: tn, node: tn.m.Nodes[1].API}
	var claim api.ClaimResponse
	bankB.runJSON(&claim, "claim", "verify", "kyc-dana-1", "--content-file", kyc)
	if claim.Status != api.ClaimValid || claim.Issuer != "bank-a" || claim.IssuerName != "Bank A" || claim.IssuedBy != addr["org1"].String() {
		t.Fatalf("claim: %+v", claim)
	}
	bankB.fails("other content", "claim", "verify", "kyc-dana-1", "--content", "forged")
	g.fails("not a consortium member", "claim", "issue", "self-kyc", "--issuer", "dana", "--subject", "dana", "--schema", "kyc/v1",
		"--content", "trust me", "--from", "dana", "--wait")
	g.run("claim", "revoke", "kyc-dana-1", "--from", "org1", "--wait")
	caughtUp(t, tn)
	bankB.fails("is revoked", "claim", "verify", "kyc-dana-1")

	// 4. A notarized photo: the first anchor is the one that counts.
	photo := writeFile(t, work, "photo.jpg", strings.Repeat("\xff\xd8 not really a jpeg ", 1000))
	g.run("notary", "anchor", "--file", photo, "--from", "org3", "--wait")
	g.fails("already exists", "notary", "anchor", "--file", photo, "--from", "org4", "--wait")
	var anchor api.NotaryResponse
	bankB.runJSON(&anchor, "notary", "lookup", "--file", photo)
	if anchor.By != addr["org3"].String() || anchor.Height == 0 || anchor.TimeMs == 0 {
		t.Fatalf("anchor: %+v", anchor)
	}

	// 5. An escrow released by its preimage; no refund after.
	g.run("escrow", "create", "deal-42", "--to", "org2", "--amount", "5000", "--secret", "open sesame", "--blocks", "100", "--from", "org1", "--wait")
	g.fails("does not match", "escrow", "release", "deal-42", "--secret", "open says me", "--from", "org2", "--wait")
	g.run("escrow", "release", "deal-42", "--secret", "open sesame", "--from", "org2", "--wait")
	g.fails("already released", "escrow", "refund", "deal-42", "--from", "org1", "--wait")
	var esc api.EscrowResponse
	g.runJSON(&esc, "escrow", "show", "deal-42")
	if esc.Status != state.EscrowReleased || esc.Preimage != hex.EncodeToString([]byte("open sesame")) {
		t.Fatalf("escrow: %+v", esc)
	}

	// 6. A vote between the banks' identities.
	g.run("identity", "register", "bank-b", "--kind", "organization", "--name", "Bank B", "--from", "org2", "--wait")
	g.run("ballot", "create", "venue-2027", "--title", "Where do we meet in 2027?", "--option", "Lisbon", "--option", "Oslo",
		"--eligible", "bank-a", "--eligible", "bank-b", "--blocks", "200", "--from", "org1", "--wait")
	g.run("ballot", "vote", "venue-2027", "--identity", "bank-a", "--option", "Oslo", "--from", "org1", "--wait")
	g.run("ballot", "vote", "venue-2027", "--identity", "bank-b", "--option", "Oslo", "--from", "org2", "--wait")
	g.fails("already voted", "ballot", "vote", "venue-2027", "--identity", "bank-b", "--option", "Lisbon", "--from", "org2", "--wait")
	var ballot api.BallotResponse
	g.runJSON(&ballot, "ballot", "tally", "venue-2027")
	if !slices.Equal(ballot.Tally, []uint64{0, 2}) || ballot.Votes != 2 || ballot.Closed {
		t.Fatalf("ballot: %+v", ballot)
	}

	// 8. Back-to-back transfers without --wait, spread over the four nodes (issue #11): each node
	// knows only its own pending transactions, so the wallet's own record of the nonces it signed
	// is what keeps the next command from reusing one that another node holds pending.
	const sends = 50
	for i := 0; i < sends; i++ {
		gi := &guildCLI{t: t, tn: tn, node: tn.m.Nodes[i%len(tn.m.Nodes)].API}
		cmd := []string{"wallet", "send"}
		if i%2 == 1 {
			cmd = []string{"account", "send"}
		}
		gi.run(append(cmd, "--from", "org3", "--to", "dana", "--amount", "1")...)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		d, err := tn.clients[0].Account(tn.ctx, addr["dana"].String())
		if err == nil && d.Balance == sends {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dana's balance %d (%v), want %d: a back-to-back send was lost", d.Balance, err, sends)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// 7. A fifth organization joins, then its validator is scheduled.
	var org5 node.InitResult
	g.runJSON(&org5, "node", "init", "--home", filepath.Join(work, "org5-node"), "--moniker", "org5")
	g.run("gov", "propose", "add-org5", "--add-member", "org5", "--controller", "org5", "--from", "org1", "--wait")
	g.run("gov", "vote", "add-org5", "--yes", "--from", "org2", "--wait")
	g.run("gov", "vote", "add-org5", "--yes", "--from", "org3", "--wait")
	g.run("gov", "propose", "org5-validator", "--validator", "org5", "--power", "1", "--pubkey", org5.ValidatorPubKey,
		"--peer-id", org5.PeerID, "--in", "40", "--from", "org5", "--wait")
	for _, org := range []string{"org1", "org2", "org3"} {
		g.run("gov", "vote", "org5-validator", "--yes", "--from", org, "--wait")
	}
	g.fails("no longer open", "gov", "vote", "org5-validator", "--no", "--from", "org4", "--wait") // it has passed
	var props api.ProposalsResponse
	g.runJSON(&props, "gov", "list")
	if len(props.Proposals) != 2 || props.Members != 5 || props.Proposals[0].Status != state.ProposalPassed ||
		props.Proposals[1].Status != state.ProposalPassed || len(props.Proposals[1].Yes) != 4 {
		t.Fatalf("proposals: %+v", props)
	}
	for i, c := range tn.clients {
		vs, err := c.Validators(tn.ctx)
		if err != nil || len(vs.Current.Validators) != 4 || len(vs.Scheduled) != 1 ||
			vs.Scheduled[0].Height != props.Proposals[1].EffectiveHeight || len(vs.Scheduled[0].Validators) != 5 ||
			!slices.ContainsFunc(vs.Scheduled[0].Validators, func(v api.ValidatorJSON) bool {
				return v.Name == "org5" && v.PubKey == org5.ValidatorPubKey && v.PeerID == org5.PeerID
			}) {
			t.Fatalf("node %d validators: %+v %v", i+1, vs, err)
		}
	}
}

// caughtUp waits until every node has committed what node 1 has: a --wait through node 1 says
// nothing of when the others apply the block, and on a loaded machine one may lag a moment.
func caughtUp(t *testing.T, tn *liveTestnet) {
	t.Helper()
	st, err := tn.clients[0].Status(tn.ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for i, c := range tn.clients {
		for {
			s, err := c.Status(tn.ctx)
			if err == nil && s.Height >= st.Height {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d at height %d (%v), node 1 at %d", i+1, s.Height, err, st.Height)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// guildCLI runs the guild binary against a testnet's wallet and one node.
type guildCLI struct {
	t    *testing.T
	tn   *liveTestnet
	node string
}

func (g *guildCLI) exec(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(g.tn.ctx, 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.tn.bin, args...)
	cmd.Env = append(os.Environ(), "GUILD_WALLET="+g.tn.m.Wallet, "GUILD_NODE="+g.node, wallet.PassphraseEnv+"="+testPassphrase)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// run runs guild args and fails the test unless it succeeds.
func (g *guildCLI) run(args ...string) string {
	g.t.Helper()
	out, errOut, err := g.exec(args...)
	if err != nil {
		g.t.Fatalf("guild %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// runJSON runs guild args --json and decodes its output into v.
func (g *guildCLI) runJSON(v any, args ...string) {
	g.t.Helper()
	out := g.run(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		g.t.Fatalf("guild %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs guild args and fails the test unless it exits with status 1 saying why (want).
func (g *guildCLI) fails(want string, args ...string) {
	g.t.Helper()
	out, errOut, err := g.exec(args...)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errOut, want) {
		g.t.Fatalf("guild %s: want exit status 1 saying %q, got %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), want, err, out, errOut)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
