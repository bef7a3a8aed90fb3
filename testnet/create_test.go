package testnet

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age/armor"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/wallet"
)

const testPassphrase = "correct horse battery staple"

// testWorkFactor makes wallet keys cheap to encrypt in tests that do not look at them; the race
// detector makes scrypt very slow.
const testWorkFactor = 10

func TestCreateWritesConsistentTestnet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	m, err := Create(CreateOptions{Dir: dir, Validators: 4, Backend: "goleveldb", Passphrase: testPassphrase})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 4 {
		t.Fatalf("%d nodes, want 4", len(m.Nodes))
	}
	if !regexp.MustCompile(`^guild-testnet-[0-9a-f]{6}$`).MatchString(m.ChainID) {
		t.Errorf("chain ID %q, want guild-testnet-<6 hex>", m.ChainID)
	}

	// One genesis, byte for byte, in every home.
	genBytes, err := os.ReadFile(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range m.Nodes[1:] {
		b, err := os.ReadFile(filepath.Join(n.Home, node.GenesisFile))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, genBytes) {
			t.Errorf("%s has a different genesis from node1", n.Name)
		}
	}
	gen, err := node.LoadGenesis(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	if gen.ChainID != m.ChainID {
		t.Errorf("genesis chain ID %q, manifest %q", gen.ChainID, m.ChainID)
	}
	if gen.GenesisTime.Location().String() != "UTC" || gen.GenesisTime.Nanosecond() != 0 {
		t.Errorf("genesis time %v, want UTC to the second", gen.GenesisTime)
	}
	// Each organization is a consortium member acting through its wallet key (issue 4).
	if len(gen.Members) != len(m.Nodes) {
		t.Errorf("%d members, want %d", len(gen.Members), len(m.Nodes))
	}
	for i, mb := range gen.Members {
		acct := gen.Accounts[slices.IndexFunc(gen.Accounts, func(a node.GenesisAccount) bool { return a.Name == OrgName(i+1) })]
		if mb.Name != OrgName(i+1) || mb.Controller != acct.Address {
			t.Errorf("member %d: %+v, want %s controlled by %s", i, mb, OrgName(i+1), acct.Address)
		}
	}

	ports := map[string]bool{}
	for i, n := range m.Nodes {
		// Validator i is bound to node i's keys.
		v := gen.Validators[i]
		if v.Name != OrgName(i+1) || v.Power != 1 {
			t.Errorf("validator %d: name %q power %d", i, v.Name, v.Power)
		}
		nodeKey, err := node.LoadKeyFile(filepath.Join(n.Home, node.NodeKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		peerID, err := p2p.PeerIDFromKey(nodeKey)
		if err != nil {
			t.Fatal(err)
		}
		if v.PeerID != peerID || n.PeerID != peerID {
			t.Errorf("%s: genesis peer ID %s, manifest %s, node key gives %s", n.Name, v.PeerID, n.PeerID, peerID)
		}
		valKey, err := node.LoadKeyFile(filepath.Join(n.Home, node.ValidatorKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if v.PubKey != hex.EncodeToString(valKey.Public().(ed25519.PublicKey)) {
			t.Errorf("%s: genesis pub key is not the validator key's", n.Name)
		}

		// Config: own addresses as in the manifest; bootstrap is every other node.
		cfg, err := node.LoadConfig(n.Home)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Moniker != OrgName(i+1) || cfg.Storage.Backend != "goleveldb" || cfg.MemoryLimitMB != testnetMemoryLimitMB {
			t.Errorf("%s: moniker %q backend %q memory limit %d MB", n.Name, cfg.Moniker, cfg.Storage.Backend, cfg.MemoryLimitMB)
		}
		if len(cfg.P2P.Listen) != 2 || n.P2P != cfg.P2P.Listen[0]+"/p2p/"+peerID ||
			cfg.P2P.Listen[1] != strings.Replace(cfg.P2P.Listen[0], "/tcp/", "/udp/", 1)+"/quic-v1" || !cfg.P2P.MDNS {
			t.Errorf("%s: p2p listen %v (want TCP and QUIC), mdns %v, manifest %s", n.Name, cfg.P2P.Listen, cfg.P2P.MDNS, n.P2P)
		}
		if n.API != "http://"+cfg.API.Listen || !strings.HasPrefix(cfg.API.Listen, "127.0.0.1:") {
			t.Errorf("%s: api listen %s, manifest %s", n.Name, cfg.API.Listen, n.API)
		}
		var others []string
		for j, o := range m.Nodes {
			if j != i {
				others = append(others, o.P2P)
			}
		}
		if got := slices.Sorted(slices.Values(cfg.P2P.Bootstrap)); !slices.Equal(got, slices.Sorted(slices.Values(others))) {
			t.Errorf("%s: bootstrap %v, want every other node %v", n.Name, got, others)
		}
		for _, p := range []string{cfg.P2P.Listen[0], cfg.API.Listen} {
			port := p[strings.LastIndexAny(p, ":/")+1:]
			if ports[port] {
				t.Errorf("port %s used twice", port)
			}
			ports[port] = true
		}
	}

	// Wallet keys decrypt with the passphrase and are the funded genesis accounts.
	wantAccounts := []string{FaucetName, "org1", "org2", "org3", "org4"}
	if !slices.Equal(m.WalletKeys(), wantAccounts) {
		t.Errorf("wallet keys %v, want %v", m.WalletKeys(), wantAccounts)
	}
	if len(gen.Accounts) != len(wantAccounts) {
		t.Fatalf("%d genesis accounts, want %d", len(gen.Accounts), len(wantAccounts))
	}
	for i, name := range wantAccounts {
		acct := gen.Accounts[i]
		want := uint64(OrgBalance)
		if name == FaucetName {
			want = FaucetBalance
		}
		if acct.Name != name || acct.Balance != want {
			t.Errorf("genesis account %d: %s with %d, want %s with %d", i, acct.Name, acct.Balance, name, want)
		}
		_, addr, err := m.LoadWalletKey(name, testPassphrase)
		if err != nil {
			t.Fatalf("wallet key %s: %v", name, err)
		}
		if addr != acct.Address {
			t.Errorf("wallet key %s has address %s, genesis funds %s", name, addr, acct.Address)
		}
	}
	if _, _, err := m.LoadWalletKey(FaucetName, "wrong"); !errors.Is(err, wallet.ErrBadPassphrase) {
		t.Errorf("faucet key with a wrong passphrase: %v, want wallet.ErrBadPassphrase", err)
	}
	if got := scryptWorkFactor(t, filepath.Join(m.Wallet, FaucetName+".json")); got != DefaultWalletWorkFactor {
		t.Errorf("faucet key encrypted with scrypt work factor %d, want %d", got, DefaultWalletWorkFactor)
	}
}

// scryptWorkFactor reads the work factor from the age header of a wallet key file (see the
// wallet package comment for its format).
func scryptWorkFactor(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kf struct {
		EncryptedKey string `json:"encrypted_key"`
	}
	if err := json.Unmarshal(b, &kf); err != nil {
		t.Fatal(err)
	}
	hdr, err := io.ReadAll(io.LimitReader(armor.NewReader(strings.NewReader(kf.EncryptedKey)), 512))
	if err != nil && len(hdr) == 0 {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^-> scrypt \S+ (\d+)$`).FindSubmatch(hdr)
	if m == nil {
		t.Fatalf("no scrypt stanza in the age header of %s", path)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func TestCreateRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	stray := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(stray, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(CreateOptions{Dir: dir, Validators: 1, WalletWorkFactor: testWorkFactor}); err == nil {
		t.Fatal("Create in a non-empty directory succeeded")
	}
	if b, err := os.ReadFile(stray); err != nil || string(b) != "mine" {
		t.Errorf("Create touched a file it did not write: %q, %v", b, err)
	}
}

func TestCreateCleansUpAfterFailure(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(CreateOptions{Dir: dir, Validators: 2, Backend: "rocksdb", WalletWorkFactor: testWorkFactor}); err == nil {
		t.Fatal("Create with an unknown backend succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed Create left %d entries in %s", len(entries), dir)
	}
	// The directory is usable again.
	if _, err := Create(CreateOptions{Dir: dir, Validators: 1, WalletWorkFactor: testWorkFactor}); err != nil {
		t.Fatal(err)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadManifest(dir); !errors.Is(err, ErrNoManifest) {
		t.Fatalf("LoadManifest of an empty dir: %v, want ErrNoManifest", err)
	}
	m := &Manifest{
		ChainID: "guild-testnet-abcdef",
		Wallet:  filepath.Join(dir, "wallet"),
		Dir:     dir,
		Nodes: []Node{
			{Name: "node1", Home: filepath.Join(dir, "node1"), API: "http://127.0.0.1:1001", P2P: "/ip4/127.0.0.1/tcp/1000/p2p/12D3KooA", PeerID: "12D3KooA"},
			{Name: "node2", Home: filepath.Join(dir, "node2"), API: "http://127.0.0.1:1003", P2P: "/ip4/127.0.0.1/tcp/1002/p2p/12D3KooB", PeerID: "12D3KooB"},
		},
	}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	got, err := LoadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestFile+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Save left its temporary file: %v", err)
	}
}

func TestSelectNodes(t *testing.T) {
	m := &Manifest{Nodes: []Node{{Name: "node1"}, {Name: "node2"}, {Name: "node3"}}}
	for _, tc := range []struct {
		specs []string
		want  []string
		err   bool
	}{
		{nil, []string{"node1", "node2", "node3"}, false},
		{[]string{"all"}, []string{"node1", "node2", "node3"}, false},
		{[]string{"2"}, []string{"node2"}, false},
		{[]string{"node3", " 1"}, []string{"node3", "node1"}, false},
		{[]string{"4"}, nil, true},
		{[]string{"0"}, nil, true},
		{[]string{"node9"}, nil, true},
	} {
		nodes, err := m.SelectNodes(tc.specs)
		if (err != nil) != tc.err {
			t.Errorf("SelectNodes(%q): error %v, want error %v", tc.specs, err, tc.err)
			continue
		}
		var names []string
		for _, n := range nodes {
			names = append(names, n.Name)
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("SelectNodes(%q) = %v, want %v", tc.specs, names, tc.want)
		}
	}
}

func TestPassphraseSource(t *testing.T) {
	t.Setenv(PassphraseEnv, "")
	if p, src := Passphrase(); p != wallet.DefaultTestnetPassphrase || !strings.Contains(src, `default passphrase "guild-testnet"`) {
		t.Errorf("without $%s: %q, %q", PassphraseEnv, p, src)
	}
	t.Setenv(PassphraseEnv, "s3cret")
	if p, src := Passphrase(); p != "s3cret" || !strings.Contains(src, "$"+PassphraseEnv) {
		t.Errorf("with $%s: %q, %q", PassphraseEnv, p, src)
	}
}
