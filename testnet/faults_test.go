package testnet

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// Kill, pause, resume and restart act on exactly the node named, by its place in the manifest.
func TestFaultsActOnOneNode(t *testing.T) {
	t.Setenv(fakeNodeEnv, fakeServe)
	dir := t.TempDir()
	t.Cleanup(func() { Down(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Up(ctx, dir, UpOptions{Create: CreateOptions{Validators: 3, Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor}, Binary: os.Args[0]})
	if err != nil {
		t.Fatal(err)
	}
	pidOf := func(k int) int {
		pid, _ := running(m.Nodes[k-1].Home)
		return pid
	}
	first, third := pidOf(1), pidOf(3)

	if _, _, err := Pause(dir, 2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Resume(dir, 2); err != nil {
		t.Fatal(err)
	}
	s, err := Kill(dir, 2)
	if err != nil || !s.Killed || s.Name != m.Nodes[1].Name {
		t.Fatalf("kill: %+v %v", s, err)
	}
	if _, ok := running(m.Nodes[1].Home); ok {
		t.Fatal("node 2 still running after kill")
	}
	if _, err := Kill(dir, 2); !errors.Is(err, ErrNotRunning) {
		t.Errorf("killing a dead node: %v, want ErrNotRunning", err)
	}
	if _, pid, err := Restart(ctx, dir, 2, os.Args[0]); err != nil || pid == 0 {
		t.Fatalf("restart: pid %d, %v", pid, err)
	}
	if _, ok := running(m.Nodes[1].Home); !ok {
		t.Fatal("node 2 not running after restart")
	}
	if pidOf(1) != first || pidOf(3) != third {
		t.Error("a fault on node 2 touched another node")
	}
	if _, _, err := NodeAt(dir, 4); err == nil {
		t.Error("node 4 of 3 accepted")
	}
}
