package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// `guild gov propose --upgrade` schedules a protocol upgrade (the next version by default),
// `guild gov upgrades` shows it, `--cancel-upgrade` takes it back; a node whose binary lacks the
// version stops before the activation height, and `guild node start` then exits with code
// node.ExitUpgradeRequired and the message.
func TestUpgradeCommands(t *testing.T) {
	dir, keys := testWallet(t, "acme")
	home := t.TempDir()
	if _, err := node.InitHome(home, "solo"); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Consensus.EmptyBlockMillis = 20
	if err := node.SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	gen, err := node.LoadGenesis(filepath.Join(home, node.GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	gen.Accounts = append(gen.Accounts, node.GenesisAccount{Address: keys["acme"].Address, Balance: 1000})
	gen.Members = []state.Member{{Name: "acme", Controller: keys["acme"].Address}}
	if err := gen.Save(filepath.Join(home, node.GenesisFile)); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	<-n.Started()
	url := "http://" + n.APIAddr()
	c := api.NewClient(url)
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := runGuild(t, append(args, "--wallet", dir, "--node", url)...)
		if err != nil {
			t.Fatalf("guild %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return out
	}

	run("gov", "propose", "up-far", "--upgrade", "far", "--in", "1000", "--info", "guild 2.0", "--from", "acme", "--wait")
	if out := run("gov", "upgrades"); !strings.Contains(out, "protocol version 1 in force") ||
		!regexp.MustCompile(`far\s+\d+\s+2\s+scheduled\s+up-far\s+guild 2.0`).MatchString(out) {
		t.Fatalf("gov upgrades:\n%s", out)
	}
	if out := run("gov", "list"); !strings.Contains(out, "upgrade far to protocol version 2 at height") {
		t.Fatalf("gov list:\n%s", out)
	}
	run("gov", "propose", "no-far", "--cancel-upgrade", "far", "--from", "acme", "--wait")
	if ups, err := c.Upgrades(ctx); err != nil || len(ups.Upgrades) != 0 {
		t.Fatalf("after cancelling: %+v %v", ups, err)
	}

	// One that binds soon: this binary (default build) stops before it.
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at := st.Height + state.MinUpgradeDelay + 10
	run("gov", "propose", "up-near", "--upgrade", "near", "--at", fmt.Sprint(at), "--from", "acme", "--wait")
	if state.SupportedVersion >= 2 {
		if _, err := c.BlockWait(ctx, at+1, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		return
	}
	select {
	case err := <-done:
		if !errors.Is(err, node.ErrUpgradeRequired) {
			t.Fatalf("node stopped with %v, want ErrUpgradeRequired", err)
		}
	case <-ctx.Done():
		t.Fatal("the node did not stop before the activation height")
	}
	var out, errOut bytes.Buffer
	code := startNode(home, &out, &errOut)
	want := fmt.Sprintf(`upgrade "near" activates protocol version 2 at height %d`, at)
	if code != node.ExitUpgradeRequired || !strings.Contains(errOut.String(), want) ||
		!strings.Contains(errOut.String(), "install a binary that supports protocol version 2 and restart") {
		t.Fatalf("node start: exit %d, stderr:\n%s", code, errOut.String())
	}
}

// startNode is `guild node start --home home` as main runs it, with its exit code.
func startNode(home string, stdout, stderr *bytes.Buffer) int {
	return run([]string{"guild", "node", "start", "--home", home}, stdout, stderr)
}
