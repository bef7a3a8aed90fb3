//go:build linux

package testnet

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
)

// netnsEnv must be 1 for TestNetnsPartition to run (`make netns` sets it): it needs root and
// changes the machine's network namespaces, so `make test` leaves it out.
const netnsEnv = "GUILD_NETNS"

// TestNetnsPartition runs 4 validators as separate hosts: each in its own network namespace
// (10.77.0.1-4, addresses that exist only inside those namespaces), joined by veth pairs to a
// bridge in a hub namespace, with delay and loss on every link. It partitions them 2|2 by moving
// two links to a second bridge, checks that no block commits while neither side has a quorum,
// heals, and checks that the chain resumes and every node holds the same blocks. Namespaces and
// processes are removed (by PID) even when it fails.
func TestNetnsPartition(t *testing.T) {
	if os.Getenv(netnsEnv) != "1" {
		t.Skipf("set %s=1 (make netns) to run the network namespace test", netnsEnv)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for ip netns")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command")
	}
	bin := buildGuild(t)
	dir := t.TempDir()
	m, err := Create(CreateOptions{Dir: dir, Validators: 4, Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor})
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("guildt%d", os.Getpid()%100000)
	hub := prefix + "-hub"
	nss := make([]string, len(m.Nodes))
	for i := range nss {
		nss[i] = fmt.Sprintf("%s-%d", prefix, i+1)
	}
	run := func(args ...string) error {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	must := func(args ...string) {
		t.Helper()
		if err := run(args...); err != nil {
			t.Fatal(err)
		}
	}
	// Registered first, so it runs last: after the processes are gone.
	t.Cleanup(func() {
		for _, ns := range append(nss, hub) {
			_ = run("ip", "netns", "del", ns)
		}
	})

	// The network: a hub namespace with bridges br0 and br1, and a host namespace per validator.
	must("ip", "netns", "add", hub)
	for _, br := range []string{"br0", "br1"} {
		must("ip", "-n", hub, "link", "add", br, "type", "bridge")
		must("ip", "-n", hub, "link", "set", br, "up")
	}
	addr := func(i int) string { return fmt.Sprintf("10.77.0.%d", i+1) }
	for i, ns := range nss {
		link := fmt.Sprintf("h%d", i+1)
		must("ip", "netns", "add", ns)
		must("ip", "-n", hub, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
		must("ip", "-n", hub, "link", "set", link, "master", "br0", "up")
		must("ip", "-n", ns, "addr", "add", addr(i)+"/24", "dev", "eth0")
		must("ip", "-n", ns, "link", "set", "eth0", "up")
		must("ip", "-n", ns, "link", "set", "lo", "up")
	}
	impairment := impairLinks(t, run, nss)
	fmt.Printf("netns: 4 validators in namespaces %s-{1..4} on bridge %s/br0; %s\n", prefix, hub, impairment)

	for i, n := range m.Nodes {
		cfg, err := node.LoadConfig(n.Home)
		if err != nil {
			t.Fatal(err)
		}
		cfg.P2P.Listen = []string{fmt.Sprintf("/ip4/%s/tcp/26656", addr(i))}
		cfg.P2P.Bootstrap = nil
		for j, other := range m.Nodes {
			if j != i {
				cfg.P2P.Bootstrap = append(cfg.P2P.Bootstrap, fmt.Sprintf("/ip4/%s/tcp/26656/p2p/%s", addr(j), other.PeerID))
			}
		}
		cfg.API.Listen = "127.0.0.1:8645" // the loopback of its own namespace
		cfg.Consensus.EmptyBlockMillis = 200
		if err := node.SaveConfig(n.Home, cfg); err != nil {
			t.Fatal(err)
		}
	}

	// The real binary in each namespace, each in its own process group, stopped by PID.
	for i, n := range m.Nodes {
		logf, err := os.Create(filepath.Join(n.Home, LogFile))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", nss[i], bin, "node", "start", "--home", n.Home)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		pid, home := cmd.Process.Pid, n.Home
		t.Cleanup(func() {
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				<-done
			}
			if t.Failed() {
				t.Logf("last lines of %s/%s:\n%s", home, LogFile, logTail(home, 25))
			}
		})
	}

	apis := make([]*nsAPI, len(nss))
	for i, ns := range nss {
		apis[i] = newNSAPI(ns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	heights := func() []uint64 {
		hs := make([]uint64, len(apis))
		for i, a := range apis {
			var st api.StatusResponse
			if err := a.get(ctx, "/v1/status", &st); err == nil {
				hs[i] = st.Height
			}
		}
		return hs
	}
	waitAll := func(what string, h uint64, limit time.Duration) []uint64 {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			hs := heights()
			if slices.Min(hs) >= h {
				return hs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: heights %v after %v, want all >= %d", what, hs, limit, h)
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	start := time.Now()
	hs := waitAll("start", 5, 90*time.Second)
	fmt.Printf("netns: all 4 validators at heights %v after %v\n", hs, time.Since(start).Round(time.Millisecond))

	// Partition 2|2: nodes 3 and 4 move to br1. Neither side holds 3 of 4 votes.
	for _, link := range []string{"h3", "h4"} {
		must("ip", "-n", hub, "link", "set", link, "master", "br1")
	}
	atCut := slices.Max(heights())
	// A block whose commits were already on the wire may still land: one, at most.
	const observe = 15 * time.Second
	var during []uint64
	for end := time.Now().Add(observe); time.Now().Before(end); {
		during = heights()
		if slices.Max(during) > atCut+1 {
			t.Fatalf("a block committed during the 2|2 partition: heights %v, highest %d at the cut", during, atCut)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	stalled := slices.Max(during)
	fmt.Printf("netns: partitioned {1,2}|{3,4} at height %d; %v later heights %v: no block committed\n", atCut, observe, during)

	for _, link := range []string{"h3", "h4"} {
		must("ip", "-n", hub, "link", "set", link, "master", "br0")
	}
	healed := time.Now()
	hs = waitAll("after healing", stalled+5, 3*time.Minute)
	fmt.Printf("netns: healed; the chain resumed: heights %v (%d blocks past the partition) %v after healing\n",
		hs, slices.Min(hs)-stalled, time.Since(healed).Round(time.Millisecond))

	// Every node holds the same block at every height.
	top := slices.Min(hs)
	for h := uint64(1); h <= top; h++ {
		var hash string
		for i, a := range apis {
			var b api.BlockResponse
			if err := a.get(ctx, fmt.Sprintf("/v1/blocks/%d", h), &b); err != nil {
				t.Fatalf("node%d block %d: %v", i+1, h, err)
			}
			if hash == "" {
				hash = b.Hash
			} else if b.Hash != hash {
				t.Fatalf("block %d: node%d has %s, node1 has %s", h, i+1, b.Hash, hash)
			}
		}
	}
	fmt.Printf("netns: all 4 validators agree on blocks 1..%d\n", top)
}

// impairLinks puts delay and loss on each validator's link: tc netem where the kernel has it;
// where it lacks sch_netem, a tbf rate limit (queueing delay under load) and random loss by
// nftables, and says so. It returns what it applied.
func impairLinks(t *testing.T, run func(...string) error, nss []string) string {
	t.Helper()
	netem := "tc netem delay 25ms 5ms loss 1% on every link"
	for i, ns := range nss {
		err := run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "25ms", "5ms", "loss", "1%")
		if err == nil {
			continue
		}
		if i > 0 || !strings.Contains(err.Error(), "qdisc kind is unknown") {
			t.Fatal(err)
		}
		netem = ""
		break
	}
	if netem != "" {
		return netem
	}
	// This kernel has no sch_netem (CONFIG_NET_SCH_NETEM unset), so netem cannot delay.
	desc := "tc netem unavailable (kernel without sch_netem); tc tbf rate 20mbit on every link"
	for _, ns := range nss {
		if err := run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
			"rate", "20mbit", "burst", "64kb", "latency", "100ms"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return desc + "; no loss (nft not installed)"
	}
	for _, ns := range nss {
		for _, args := range [][]string{
			{"add", "table", "inet", "guildimpair"},
			{"add", "chain", "inet", "guildimpair", "out", "{ type filter hook output priority 0; }"},
			{"add", "rule", "inet", "guildimpair", "out", "oifname", "eth0", "numgen", "random", "mod", "100", "<", "1", "drop"},
		} {
			if err := run(append([]string{"ip", "netns", "exec", ns, "nft"}, args...)...); err != nil {
				t.Fatal(err)
			}
		}
	}
	return desc + "; 1% random loss on every link by nftables (numgen random)"
}

// nsAPI talks HTTP to the node API listening on the loopback of namespace ns: each connection's
// socket is made inside that namespace, from a thread switched into it for the dial.
type nsAPI struct {
	ns     string
	client *http.Client
}

func newNSAPI(ns string) *nsAPI {
	a := &nsAPI{ns: ns}
	a.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: a.dial}}
	return a
}

func (a *nsAPI) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:8645"+path, nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (a *nsAPI) dial(ctx context.Context, network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread stays locked, and so dies with this goroutine, unless it is switched back.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + a.ns)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := setns(target.Fd()); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", a.ns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if setns(orig.Fd()) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func setns(fd uintptr) error { return unix.Setns(int(fd), unix.CLONE_NEWNET) }
