package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

// lockedBuffer is written by a command running in a goroutine and read by the test meanwhile.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// watchHome makes the home of a one-validator chain on disk (so that it survives a restart)
// whose genesis funds acme and makes it the only member.
func watchHome(t *testing.T, acme wallet.Entry) string {
	t.Helper()
	home := t.TempDir()
	if _, err := node.InitHome(home, "solo"); err != nil {
		t.Fatal(err)
	}
	gen, err := node.LoadGenesis(filepath.Join(home, node.GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	gen.Accounts = append(gen.Accounts, node.GenesisAccount{Address: acme.Address, Balance: 1_000_000})
	gen.Members = []state.Member{{Name: "acme", Controller: acme.Address}}
	if err := gen.Save(filepath.Join(home, node.GenesisFile)); err != nil {
		t.Fatal(err)
	}
	return home
}

// startAt runs the node of home with its API on apiAddr; stop ends it (also at cleanup).
func startAt(t *testing.T, home, apiAddr string) (stop func()) {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.API.Listen = apiAddr
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Consensus.EmptyBlockMillis = 50
	if err := node.SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(home, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node stopped with: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-n.Started():
	case err := <-done:
		t.Fatalf("node failed to start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("node did not start")
	}
	return stop
}

// watchLines parses `guild watch --json` output.
func watchLines(t *testing.T, out string) []api.StreamEvent {
	t.Helper()
	var evs []api.StreamEvent
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var ev api.StreamEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// guild watch prints the stream from a height, filters by a wallet key's name, and when its node
// goes away it moves to the next node of --node and resumes after the last event it printed:
// the events it prints are exactly the chain's, with no gap and no duplicate.
func TestWatchResumesOnAnotherNode(t *testing.T) {
	dir, keys := testWallet(t, "acme", "bea")
	home := watchHome(t, keys["acme"])
	addrA, addrB := freePort(t), freePort(t)
	urlA, urlB := "http://"+addrA, "http://"+addrB
	stopA := startAt(t, home, addrA)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	out, stderr, err := runGuild(t, "wallet", "send", "--from", "acme", "--to", "bea", "--amount", "7", "--wait", "--wallet", dir, "--node", urlA)
	if err != nil {
		t.Fatalf("send: %v\n%s%s", err, out, stderr)
	}
	// The account filter takes a key name; without --kinds it prints transactions only.
	out, stderr, err = runGuild(t, "watch", "--from", "1", "--account", "bea", "--limit", "1", "--json", "--wallet", dir, "--node", urlA)
	if err != nil {
		t.Fatalf("watch --account: %v\n%s", err, stderr)
	}
	evs := watchLines(t, out)
	var tx api.TxEventJSON
	if len(evs) != 1 || evs[0].Type != api.EventTx || json.Unmarshal(evs[0].Data, &tx) != nil || tx.Op != "transfer" ||
		tx.From != keys["acme"].Address.String() || len(tx.Accounts) != 2 || tx.Accounts[1] != keys["bea"].Address.String() {
		t.Fatalf("watch --account bea: %s", out)
	}
	// Human output names the operation.
	out, _, err = runGuild(t, "watch", "--from", "1", "--kinds", "block,tx", "--limit", "4", "--node", urlA)
	if err != nil || !strings.Contains(out, "transfer committed") || !strings.Contains(out, keys["bea"].Address.String()) {
		t.Fatalf("watch: %v\n%s", err, out)
	}
	// A bad filter is the node's refusal, at once.
	_, stderr, err = runGuild(t, "watch", "--item", "bad id", "--node", urlA)
	if exitCode(err) != 1 || !strings.Contains(err.Error()+stderr, "item ID") {
		t.Fatalf("bad item: %v %s", err, stderr)
	}

	// Now the failover: A goes away while watch is reading, B (the same chain) takes over.
	// Enough events that watch is still waiting for new blocks when A stops.
	st, err := api.NewClient(urlA).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	limit := int(st.Height) + 30
	app := newApp()
	var wout, werr lockedBuffer
	app.Writer, app.ErrWriter = &wout, &werr
	app.ExitErrHandler = func(*cli.Context, error) {}
	done := make(chan error, 1)
	go func() {
		done <- app.Run(flagsFirst(app, []string{"guild", "watch", "--from", "1", "--limit", fmt.Sprint(limit), "--json",
			"--idle-timeout", "10s", "--node", urlA + "," + urlB}))
	}()
	for strings.Count(wout.String(), "\n") < 5 {
		select {
		case err := <-done:
			t.Fatalf("watch ended early: %v\n%s%s", err, wout.String(), werr.String())
		case <-ctx.Done():
			t.Fatalf("watch printed too little: %s%s", wout.String(), werr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	stopA()
	startAt(t, home, addrB)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch: %v\n%s", err, werr.String())
		}
	case <-ctx.Done():
		t.Fatalf("watch did not finish: %s%s", wout.String(), werr.String())
	}
	if !strings.Contains(werr.String(), "the node is stopping") || !strings.Contains(werr.String(), "resuming after") {
		t.Errorf("watch did not say it resumed: %q", werr.String())
	}
	got := watchLines(t, wout.String())
	want := make([]api.StreamEvent, 0, limit)
	_, err = api.NewClient(urlB).Events(ctx, api.EventsQuery{FromHeight: 1}, func(ev api.StreamEvent) error {
		if want = append(want, ev); len(want) == limit {
			return errWatchDone
		}
		return nil
	})
	if err != errWatchDone {
		t.Fatal(err)
	}
	if len(got) != limit {
		t.Fatalf("watch printed %d events, want %d:\n%s", len(got), limit, wout.String())
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Type != want[i].Type || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("event %d: watch printed %s %s %s, the chain has %s %s %s\nstderr: %s", i,
				got[i].ID, got[i].Type, got[i].Data, want[i].ID, want[i].Type, want[i].Data, werr.String())
		}
	}
}
