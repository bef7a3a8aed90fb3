package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/guild-ledger/guild/node/api"
)

// UpOptions say how to bring a testnet up.
type UpOptions struct {
	// Create describes the testnet to make when the directory holds none; its Dir is ignored.
	Create CreateOptions
	// Binary is the guild binary that runs the nodes; default: the running executable.
	Binary string
	// Progress, if set, receives a line per step (created, started, already running).
	Progress io.Writer
}

// pollInterval paces the waits on nodes' APIs.
const pollInterval = 100 * time.Millisecond

// Up makes the testnet in dir if dir holds no manifest, starts every node that is not running,
// and waits until every node's API reports its first block final (height >= 1), or ctx ends.
// Nodes keep running after Up returns, even on error; Down stops them.
func Up(ctx context.Context, dir string, opts UpOptions) (*Manifest, error) {
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	m, err := LoadManifest(dir)
	if errors.Is(err, ErrNoManifest) {
		co := opts.Create
		co.Dir = dir
		if m, err = Create(co); err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "created testnet %s in %s: %d validators\n", m.ChainID, m.Dir, len(m.Nodes))
	} else if err != nil {
		return nil, err
	}
	binary := opts.Binary
	if binary == "" {
		if binary, err = os.Executable(); err != nil {
			return m, fmt.Errorf("testnet: finding the guild binary: %w", err)
		}
	}
	exited := make(map[int]<-chan struct{})
	for i, n := range m.Nodes {
		if pid, ok := running(n.Home); ok {
			fmt.Fprintf(progress, "%s already running (pid %d)\n", n.Name, pid)
			continue
		}
		pid, done, err := start(binary, n.Home)
		if err != nil {
			return m, err
		}
		exited[i] = done
		fmt.Fprintf(progress, "started %s (pid %d), log %s/%s\n", n.Name, pid, n.Home, LogFile)
	}
	return m, waitFirstBlock(ctx, m, exited)
}

// waitFirstBlock waits until every node answers /v1/status with height >= 1 (a node that
// joined: until it answers). A node whose
// process dies fails the wait at once, with the end of its log. exited holds, by node index, the
// exit of the nodes this process started, which says it more surely than the PID file.
func waitFirstBlock(ctx context.Context, m *Manifest, exited map[int]<-chan struct{}) error {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		statuses := queryStatus(ctx, m.Nodes, time.Second)
		var waiting []string
		for i, n := range m.Nodes {
			if statuses[i].err != nil && hasExited(n, exited[i]) {
				return fmt.Errorf("testnet: %s exited; last lines of %s/%s:\n%s", n.Name, n.Home, LogFile, logTail(n.Home, 20))
			}
			switch st := statuses[i]; {
			case st.err != nil:
				waiting = append(waiting, fmt.Sprintf("%s: API %s not answering (%v); see %s/%s", n.Name, n.API, st.err, n.Home, LogFile))
			case st.resp.Height < 1 && !n.Joined:
				// A joined node cannot connect before governance admits it: its API is enough.
				waiting = append(waiting, fmt.Sprintf("%s: at height 0 with %d peers; see %s/%s", n.Name, st.resp.Peers, n.Home, LogFile))
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnet: no first block on every node (%w); the nodes keep running:\n  %s",
				ctx.Err(), strings.Join(waiting, "\n  "))
		case <-ticker.C:
		}
	}
}

// hasExited reports whether node n's process is gone: the one this process started (done), or
// else the one its PID file names.
func hasExited(n Node, done <-chan struct{}) bool {
	if done != nil {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	_, ok := running(n.Home)
	return !ok
}

type statusResult struct {
	resp api.StatusResponse
	err  error
}

// queryStatus asks every node for /v1/status at once, each within timeout.
func queryStatus(ctx context.Context, nodes []Node, timeout time.Duration) []statusResult {
	out := make([]statusResult, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			qctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out[i].resp, out[i].err = api.NewClient(n.API).Status(qctx)
		})
	}
	wg.Wait()
	return out
}

// NodeStatus is one node as `guild testnet status` shows it. When the API does not answer,
// Running is false, Error says why, and the numbers are unknown (zero).
type NodeStatus struct {
	Name    string `json:"name"`
	API     string `json:"api"`
	PID     int    `json:"pid,omitempty"` // of the live process `up` started; 0 if none
	Running bool   `json:"running"`       // the node's API answers
	Height  uint64 `json:"height"`
	Peers   int    `json:"peers"`
	View    uint64 `json:"view"`
	Leader  uint32 `json:"leader"`
	// LeaderName names the leader in the validator set of the height (empty from older nodes).
	LeaderName string `json:"leader_name,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Status asks every node of the testnet in dir for its status, in manifest order.
func Status(ctx context.Context, dir string) ([]NodeStatus, error) {
	m, err := LoadManifest(dir)
	if err != nil {
		return nil, err
	}
	statuses := queryStatus(ctx, m.Nodes, 2*time.Second)
	out := make([]NodeStatus, len(m.Nodes))
	for i, n := range m.Nodes {
		s := NodeStatus{Name: n.Name, API: n.API}
		if pid, ok := running(n.Home); ok {
			s.PID = pid
		}
		if st := statuses[i]; st.err != nil {
			s.Error = st.err.Error()
		} else {
			s.Running = true
			s.Height, s.Peers, s.View, s.Leader = st.resp.Height, st.resp.Peers, st.resp.View, st.resp.Leader
			s.LeaderName = st.resp.LeaderName
		}
		out[i] = s
	}
	return out, nil
}

// Down stops every running node of the testnet in dir: SIGTERM to its process group, SIGKILL to
// whatever is left 10 s later. It removes the PID files and reports what it stopped. Data stays;
// `up` resumes the chain.
func Down(dir string) ([]Stopped, error) {
	m, err := LoadManifest(dir)
	if err != nil {
		return nil, err
	}
	return stop(m.Nodes, stopGrace)
}
