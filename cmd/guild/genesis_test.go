package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/testnet"
)

// asGuildEnv makes this test binary behave as the guild binary (TestMain), so that tests start
// real node processes without building guild first.
const asGuildEnv = "GUILD_TEST_AS_GUILD"

func TestMain(m *testing.M) {
	if os.Getenv(asGuildEnv) == "1" {
		os.Exit(run(os.Args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

var hashLine = regexp.MustCompile(`genesis hash: ([0-9a-f]{64})`)

// Four organizations, each with its own home, build a genesis by passing a draft file from one to
// the next; a tampered entry is refused naming its organization; every member validates the
// genesis and gets the same hash; four node processes started from it find each other only
// through the announce addresses in it (no bootstrap list, no mDNS) and agree on blocks.
func TestGenesisCeremonyAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four node processes; skipped with -short")
	}
	const n = 4
	ports, err := testnet.FreePorts(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	walletDir, _ := testWallet(t, "treasury")
	type org struct{ name, dir, home string }
	orgs := make([]org, n)
	for i := range orgs {
		dir := t.TempDir() // each organization's own machine
		orgs[i] = org{name: fmt.Sprintf("org%d", i+1), dir: dir, home: filepath.Join(dir, "home")}
		if out, errOut, err := runGuild(t, "node", "init", "--no-account", "--home", orgs[i].home, "--moniker", orgs[i].name); err != nil {
			t.Fatalf("node init: %v\n%s%s", err, out, errOut)
		}
		cfg, err := node.LoadConfig(orgs[i].home)
		if err != nil {
			t.Fatal(err)
		}
		cfg.P2P.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ports[2*i])}
		cfg.P2P.Bootstrap, cfg.P2P.MDNS, cfg.P2P.DHT = nil, false, false
		cfg.API.Listen = fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])
		cfg.Consensus.EmptyBlockMillis = 100
		if err := node.SaveConfig(orgs[i].home, cfg); err != nil {
			t.Fatal(err)
		}
	}
	guild := func(args ...string) string {
		t.Helper()
		out, errOut, err := runGuild(t, args...)
		if err != nil {
			t.Fatalf("guild %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	pass := func(from, to string) { // a file sent by mail
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	draft := filepath.Join(orgs[0].dir, "genesis.draft.json")
	guild("genesis", "new", "--chain-id", "ceremony-test", "--out", draft, "--threshold", "3/4")
	for i, o := range orgs {
		mine := filepath.Join(o.dir, "genesis.draft.json")
		if i > 0 {
			pass(draft, mine)
		}
		args := []string{"genesis", "add-org", "--draft", mine, "--home", o.home, "--name", o.name,
			"--announce", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ports[2*i])}
		if i == 0 {
			args = append(args, "--account", "treasury=5000000", "--wallet", walletDir)
		} else {
			args = append(args, "--account", fmt.Sprintf("%s=1000", randomAddress(t)))
		}
		guild(args...)
		draft = mine
	}

	// An entry changed after it was signed (org3's balance raised) is refused, naming org3.
	var d node.GenesisDraft
	b, _ := os.ReadFile(draft)
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	d.Orgs[2].Accounts[0].Balance *= 1000
	tampered := filepath.Join(t.TempDir(), "tampered.json")
	if err := d.Save(tampered); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runGuild(t, "genesis", "collect", "--draft", tampered, "--out", filepath.Join(t.TempDir(), "g.json")); err == nil ||
		!strings.Contains(err.Error(), `"org3"`) {
		t.Fatalf("collect of a tampered draft: err %v, want one naming org3\n%s", err, errOut)
	}

	genesis := filepath.Join(orgs[n-1].dir, "genesis.json")
	want := hashLine.FindStringSubmatch(guild("genesis", "collect", "--draft", draft, "--out", genesis))
	if want == nil {
		t.Fatal("collect printed no genesis hash")
	}
	for _, o := range orgs {
		mine := filepath.Join(o.home, node.GenesisFile)
		pass(genesis, mine)
		got := hashLine.FindStringSubmatch(guild("genesis", "validate", mine))
		if got == nil || got[1] != want[1] {
			t.Fatalf("%s: genesis hash %v, want %s", o.name, got, want[1])
		}
	}

	// The nodes, as separate processes of this binary acting as guild.
	dir := t.TempDir()
	m := &testnet.Manifest{ChainID: "ceremony-test", Dir: dir, Wallet: walletDir}
	for i, o := range orgs {
		m.Nodes = append(m.Nodes, testnet.Node{Name: o.name, Home: o.home, API: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])})
	}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	t.Setenv(asGuildEnv, "1")
	t.Cleanup(func() {
		if t.Failed() {
			for _, o := range orgs {
				b, _ := os.ReadFile(filepath.Join(o.home, testnet.LogFile))
				t.Logf("log of %s:\n%s", o.name, tail(string(b), 30))
			}
		}
		if _, err := testnet.Down(dir); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := testnet.Up(ctx, dir, testnet.UpOptions{Binary: os.Args[0]}); err != nil {
		t.Fatal(err)
	}
	// A common height, with one block hash there on every node.
	const common = 3
	var hash string
	for _, nd := range m.Nodes {
		c := api.NewClient(nd.API)
		for {
			blk, err := c.BlockWait(ctx, common, 5*time.Second)
			if err == nil {
				if hash == "" {
					hash = blk.Hash
				} else if blk.Hash != hash {
					t.Fatalf("%s has block %d %s, another node %s", nd.Name, common, blk.Hash, hash)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s never reached height %d: %v", nd.Name, common, err)
			}
		}
	}
	t.Logf("four nodes from the ceremony's genesis at height %d in %s", common, time.Since(start).Round(time.Millisecond))
	for _, o := range orgs {
		b, _ := os.ReadFile(filepath.Join(o.home, testnet.LogFile))
		if !strings.Contains(string(b), "genesis_hash="+want[1]) {
			t.Errorf("%s's log does not name the genesis hash %s", o.name, want[1])
		}
	}
}

func randomAddress(t *testing.T) state.Address {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return state.AddressFromPubKey(pub)
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func TestAnnouncePortListened(t *testing.T) {
	listen := []string{"/ip4/0.0.0.0/tcp/26656", "/ip4/0.0.0.0/udp/26656/quic-v1"}
	for a, want := range map[string]bool{
		"/dns4/node.acme.example/tcp/26656": true,
		"/ip4/203.0.113.7/tcp/30000":        false,
	} {
		if got := announcePortListened(a, listen); got != want {
			t.Errorf("%s: %v, want %v", a, got, want)
		}
	}
}
