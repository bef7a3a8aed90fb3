package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/testnet"
	"github.com/guild-ledger/guild/wallet"
)

// runSolo starts the node in home in-process; stop stops it and waits.
func runSolo(t *testing.T, home string) (n *node.Node, c *api.Client, stop func()) {
	t.Helper()
	n, err := node.New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node stopped with: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	select {
	case <-n.Started():
	case err := <-done:
		t.Fatalf("node failed to start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("node did not start")
	}
	return n, api.NewClient("http://" + n.APIAddr()), stop
}

func archiveMembers(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	return names
}

var backupHeight = regexp.MustCompile(`at height (\d+)`)

// A backup of a running node, restored into a fresh home, gives a node with the same blocks and
// state that goes on producing blocks; keys are in a backup only when asked, encrypted; a
// restore without --validator-key holds the validator key back; restore refuses a non-empty home;
// a stopped node is backed up from its stores.
func TestBackupRestoreRunningNode(t *testing.T) {
	home := filepath.Join(t.TempDir(), "orig")
	if _, err := node.InitHome(home, "solo"); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Consensus.EmptyBlockMillis = 50
	if err := node.SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	n, c, stop := runSolo(t, home)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.BlockWait(ctx, 3, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Setenv(wallet.PassphraseEnv, "backup-passphrase")
	dir := t.TempDir()
	guild := func(args ...string) string {
		t.Helper()
		out, errOut, err := runGuild(t, args...)
		if err != nil {
			t.Fatalf("guild %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	withKeys, noKeys := filepath.Join(dir, "keys.tar.gz"), filepath.Join(dir, "nokeys.tar.gz")
	admin := "http://" + n.AdminAddr()
	out := guild("node", "backup", "--home", home, "--out", withKeys, "--admin", admin, "--with-keys")
	m := backupHeight.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "from the running node") {
		t.Fatalf("backup said %q", out)
	}
	h, _ := strconv.ParseUint(m[1], 10, 64)
	guild("node", "backup", "--home", home, "--out", noKeys, "--admin", admin)
	for path, wantKeys := range map[string]bool{withKeys: true, noKeys: false} {
		names := strings.Join(archiveMembers(t, path), " ")
		if strings.Contains(names, "keys.tar.age") != wantKeys || strings.Contains(names, "_key.json") || strings.Contains(names, ".wal") {
			t.Errorf("%s holds %s", filepath.Base(path), names)
		}
	}
	orig, err := c.Block(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	next, err := c.BlockWait(ctx, h+1, 10*time.Second) // its header holds the state root after h
	if err != nil {
		t.Fatal(err)
	}
	stop()

	restored := filepath.Join(t.TempDir(), "restored")
	guild("node", "restore", "--in", withKeys, "--home", restored, "--validator-key")
	if _, _, err := runGuild(t, "node", "restore", "--in", withKeys, "--home", restored); !errors.Is(err, node.ErrRestoreHome) {
		t.Errorf("restore into a non-empty home: %v, want ErrRestoreHome", err)
	}
	start := time.Now()
	_, c2, _ := runSolo(t, restored)
	got, err := c2.Block(ctx, h)
	if err != nil || got.Hash != orig.Hash {
		t.Fatalf("restored block %d: %s, %v; want %s", h, got.Hash, err, orig.Hash)
	}
	after, err := c2.BlockWait(ctx, h+3, 10*time.Second)
	if err != nil {
		t.Fatalf("the restored node does not go on: %v", err)
	}
	first, _ := c2.Block(ctx, h+1)
	if first.Header.StateRoot != next.Header.StateRoot {
		t.Fatalf("state root after %d: restored %s, original %s", h, first.Header.StateRoot, next.Header.StateRoot)
	}
	t.Logf("backup at height %d restored; the restored node reached %d %s after its start", h, after.Height, time.Since(start).Round(time.Millisecond))

	// Without --validator-key the key is held back and the node gets one in no validator set.
	held := filepath.Join(t.TempDir(), "held")
	guild("node", "restore", "--in", withKeys, "--home", held)
	origKey, _ := os.ReadFile(filepath.Join(home, node.ValidatorKeyFile))
	heldKey, _ := os.ReadFile(filepath.Join(held, node.ValidatorKeyFile+".held"))
	newKey, _ := os.ReadFile(filepath.Join(held, node.ValidatorKeyFile))
	if string(heldKey) != string(origKey) || len(newKey) == 0 || string(newKey) == string(origKey) {
		t.Errorf("restore without --validator-key: held key matches %v, new key differs %v", string(heldKey) == string(origKey), string(newKey) != string(origKey))
	}

	// The stopped original is read from its stores.
	offline := filepath.Join(dir, "offline.tar.gz")
	if out := guild("node", "backup", "--home", home, "--out", offline); !strings.Contains(out, "stopped node") {
		t.Errorf("backup of a stopped node said %q", out)
	}
}

// A validator of a 4-node testnet, backed up while running and lost (killed, its home gone), is
// restored into a fresh home: with its validator key held back it follows and catches up with
// the others, signing nothing; with the key put back after that, it validates again.
func TestRestoredValidatorCatchesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four node processes; skipped with -short")
	}
	dir := t.TempDir()
	m, err := testnet.Create(testnet.CreateOptions{Dir: dir, Validators: 4, Passphrase: "pass", WalletWorkFactor: 10})
	if err != nil {
		t.Fatal(err)
	}
	ports, err := testnet.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	home := m.Nodes[3].Home
	cfg, err := node.LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin.Listen = "127.0.0.1:" + strconv.Itoa(ports[0])
	if err := node.SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	t.Setenv(asGuildEnv, "1")
	t.Setenv(wallet.PassphraseEnv, "backup-passphrase")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(home, testnet.LogFile))
			t.Logf("log of node4:\n%s", tail(string(b), 40))
		}
		if _, err := testnet.Down(dir); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := testnet.Up(ctx, dir, testnet.UpOptions{Binary: os.Args[0]}); err != nil {
		t.Fatal(err)
	}
	c1, c4 := api.NewClient(m.Nodes[0].API), api.NewClient(m.Nodes[3].API)
	if _, err := c4.BlockWait(ctx, 2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "node4.tar.gz")
	if out, errOut, err := runGuild(t, "node", "backup", "--home", home, "--out", archive, "--with-keys"); err != nil ||
		!strings.Contains(out, "from the running node") {
		t.Fatalf("backup: %v\n%s%s", err, out, errOut)
	}
	if _, err := testnet.Kill(dir, 4); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(home, home+".lost"); err != nil {
		t.Fatal(err)
	}
	// The chain goes on without node4 (3 of 4 are a quorum).
	st, err := c1.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.BlockWait(ctx, st.Height+5, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := runGuild(t, "node", "restore", "--in", archive, "--home", home); err != nil || !strings.Contains(out, "held") {
		t.Fatalf("restore: %v\n%s%s", err, out, errOut)
	}
	start := time.Now()
	if _, _, err := testnet.Restart(ctx, dir, 4, os.Args[0]); err != nil {
		t.Fatal(err)
	}
	tip, err := c1.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c4.BlockWait(ctx, tip.Height, 10*time.Second); err != nil {
		t.Fatalf("the restored node does not catch up to %d: %v", tip.Height, err)
	}
	t.Logf("restored node4 caught up to height %d in %s", tip.Height, time.Since(start).Round(time.Millisecond))
	if s, err := c4.Status(ctx); err != nil || s.Validator {
		t.Fatalf("restored node4 with its key held: validator %v (%v), want a follower", s.Validator, err)
	}
	// Caught up past anything the lost node signed: put the key back.
	if err := os.Rename(filepath.Join(home, node.ValidatorKeyFile+".held"), filepath.Join(home, node.ValidatorKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := testnet.Restart(ctx, dir, 4, os.Args[0]); err != nil {
		t.Fatal(err)
	}
	s, err := c4.Status(ctx)
	if err != nil || !s.Validator || s.ValidatorIdx != 3 {
		t.Fatalf("node4 with its key back: %+v, %v; want validator 3", s, err)
	}
	if _, err := c4.BlockWait(ctx, s.Height+3, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}
