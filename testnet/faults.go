package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
)

// The faults a tester injects into one node, named by K: its place, from 1, in the manifest (the
// order `testnet status` lists).

// ErrNotRunning is an action that needs a running node, on one that is not.
var ErrNotRunning = errors.New("testnet: node is not running")

// NodeAt returns node k (from 1) of the testnet in dir.
func NodeAt(dir string, k int) (*Manifest, Node, error) {
	m, err := LoadManifest(dir)
	if err != nil {
		return nil, Node{}, err
	}
	if k < 1 || k > len(m.Nodes) {
		return m, Node{}, fmt.Errorf("testnet: --node %d: the testnet in %s has nodes 1..%d", k, m.Dir, len(m.Nodes))
	}
	return m, m.Nodes[k-1], nil
}

// Kill sends SIGKILL to node k — a crash: no clean shutdown, whatever was not synced is lost.
func Kill(dir string, k int) (Stopped, error) {
	_, n, err := NodeAt(dir, k)
	if err != nil {
		return Stopped{}, err
	}
	pid, ok := running(n.Home)
	if !ok {
		return Stopped{Name: n.Name}, fmt.Errorf("%w: %s", ErrNotRunning, n.Name)
	}
	if err := signalGroup(pid, syscall.SIGKILL); err != nil {
		return Stopped{Name: n.Name, PID: pid}, err
	}
	for end := time.Now().Add(5 * time.Second); alive(pid, n.Home) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.Remove(filepath.Join(n.Home, PIDFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Stopped{Name: n.Name, PID: pid, Killed: true}, err
	}
	return Stopped{Name: n.Name, PID: pid, Killed: true}, nil
}

// Pause freezes node k with SIGSTOP: it holds its connections but answers nothing, as a node
// that hangs does. Resume undoes it.
func Pause(dir string, k int) (Node, int, error) { return signalNode(dir, k, syscall.SIGSTOP) }

// Resume lets a paused node k run again with SIGCONT.
func Resume(dir string, k int) (Node, int, error) { return signalNode(dir, k, syscall.SIGCONT) }

func signalNode(dir string, k int, sig syscall.Signal) (Node, int, error) {
	_, n, err := NodeAt(dir, k)
	if err != nil {
		return n, 0, err
	}
	pid, ok := running(n.Home)
	if !ok {
		return n, 0, fmt.Errorf("%w: %s", ErrNotRunning, n.Name)
	}
	return n, pid, signalGroup(pid, sig)
}

// Restart stops node k cleanly if it runs (SIGTERM, then SIGKILL after the grace period), starts
// it again from its data, and waits until its API answers. binary "" is this executable.
func Restart(ctx context.Context, dir string, k int, binary string) (Node, int, error) {
	_, n, err := NodeAt(dir, k)
	if err != nil {
		return n, 0, err
	}
	if pid, ok := running(n.Home); ok {
		signalGroup(pid, syscall.SIGCONT) // a paused node cannot act on SIGTERM
	}
	if _, err := stop([]Node{n}, stopGrace); err != nil {
		return n, 0, err
	}
	if binary == "" {
		if binary, err = os.Executable(); err != nil {
			return n, 0, fmt.Errorf("testnet: finding the guild binary: %w", err)
		}
	}
	pid, exited, err := start(binary, n.Home)
	if err != nil {
		return n, 0, err
	}
	return n, pid, waitAPI(ctx, n, exited)
}

// waitAPI waits until node n, just started, answers on its API; exited closes if it dies.
func waitAPI(ctx context.Context, n Node, exited <-chan struct{}) error {
	c := api.NewClient(n.API)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		if _, err := c.Status(ctx); err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("testnet: %s exited at start; last lines of %s:\n%s", n.Name,
				filepath.Join(n.Home, LogFile), logTail(n.Home, 20))
		case <-ctx.Done():
			return fmt.Errorf("testnet: %s started but its API did not answer: %w", n.Name, ctx.Err())
		case <-ticker.C:
		}
	}
}

// ErrRunning is an action that needs a stopped node, on one that runs.
var ErrRunning = errors.New("testnet: node is running")

// Wipe deletes stopped node k's chain data — blocks, state, consensus WAL, everything under its
// data directory — and keeps its keys, config and genesis, so that `restart` brings it back empty
// and block sync fetches the chain from its peers. It refuses while the node runs. It returns the
// bytes deleted.
//
// A validator's WAL goes too, so a wiped validator could sign again at a height it signed before
// the wipe if that height were still undecided when it rejoined: a test-network tool, never for
// a production validator.
func Wipe(dir string, k int) (Node, int64, error) {
	_, n, err := NodeAt(dir, k)
	if err != nil {
		return n, 0, err
	}
	if pid, ok := running(n.Home); ok {
		return n, 0, fmt.Errorf("%w: %s (pid %d); stop it first (testnet kill --node %d)", ErrRunning, n.Name, pid, k)
	}
	data := filepath.Join(n.Home, node.DataDir)
	var size int64
	_ = filepath.Walk(data, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			size += fi.Size()
		}
		return nil
	})
	if err := os.RemoveAll(data); err != nil {
		return n, 0, fmt.Errorf("testnet: wiping %s: %w", data, err)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return n, size, err
	}
	return n, size, nil
}
