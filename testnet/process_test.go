package testnet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func hasProc() bool {
	_, err := os.Stat("/proc/self/cmdline")
	return err == nil
}

func writePID(t *testing.T, home string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(home, PIDFile), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunningNeedsPIDFileAndLiveProcess(t *testing.T) {
	home := t.TempDir()
	if _, ok := running(home); ok {
		t.Error("running with no PID file")
	}
	if err := os.WriteFile(filepath.Join(home, PIDFile), []byte("not a pid"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := running(home); ok {
		t.Error("running with a garbage PID file")
	}

	// A PID that was live and is now gone (reaped).
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	writePID(t, home, cmd.Process.Pid)
	if _, ok := running(home); ok {
		t.Error("running with the PID of a process that exited")
	}
}

func TestRunningRejectsReusedPID(t *testing.T) {
	if !hasProc() {
		t.Skip("needs /proc to see command lines")
	}
	// This test process is alive, but its command line does not name the home: a stale PID file
	// whose PID now belongs to someone else.
	home := t.TempDir()
	writePID(t, home, os.Getpid())
	if _, ok := running(home); ok {
		t.Error("running: took an unrelated live process for the node")
	}
}

func TestRunningMatchesTheWholeHome(t *testing.T) {
	if !hasProc() {
		t.Skip("needs /proc to see command lines")
	}
	dir := t.TempDir()
	node1, node10 := filepath.Join(dir, "node1"), filepath.Join(dir, "node10")
	for _, home := range []string{node1, node10} {
		if err := os.Mkdir(home, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(fakeNodeEnv, fakeIdle)
	pid, exited, err := start(os.Args[0], node10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		<-exited
	})
	// Until the new program has set up its arguments, /proc/<pid>/cmdline is empty.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if got, ok := running(node10); ok {
			if got != pid {
				t.Fatalf("running(node10) = %d, want %d", got, pid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node10 never seen running")
		}
		time.Sleep(time.Millisecond)
	}
	// A stale node1 PID file that names node10's process: node1 is not running.
	writePID(t, node1, pid)
	if _, ok := running(node1); ok {
		t.Error("running(node1) took node10's process for node1's")
	}
}

func TestZombieIsNotAlive(t *testing.T) {
	if !hasProc() {
		t.Skip("needs /proc to see process states")
	}
	home := t.TempDir()
	cmd := exec.Command(os.Args[0], "node", "start", "--home", home)
	cmd.Env = append(os.Environ(), fakeNodeEnv+"="+fakeCrash)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	// Not reaped yet, so it lingers as a zombie that still answers signal 0.
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not become a zombie: %q", pid, stat)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if alive(pid, home) {
		t.Error("alive: a zombie counted as a running node")
	}
}

func TestUpStatusDownWithFakeNodes(t *testing.T) {
	t.Setenv(fakeNodeEnv, fakeServe)
	dir := t.TempDir()
	t.Cleanup(func() { Down(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var progress bytes.Buffer
	opts := UpOptions{Create: CreateOptions{Validators: 3, Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor}, Binary: os.Args[0], Progress: &progress}
	m, err := Up(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range m.Nodes {
		if !strings.Contains(progress.String(), "started "+n.Name) {
			t.Errorf("progress does not mention starting %s:\n%s", n.Name, progress.String())
		}
	}
	sts, err := Status(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for i, s := range sts {
		if s.Name != m.Nodes[i].Name || s.API != m.Nodes[i].API || !s.Running || s.Height < 1 || s.PID == 0 || s.Peers != 3 {
			t.Errorf("status %d: %+v", i, s)
		}
		pids[s.Name] = s.PID
	}

	// Resume with everything running: nothing starts.
	progress.Reset()
	if _, err := Up(ctx, dir, opts); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(progress.String(), "already running"); got != 3 {
		t.Errorf("resume: %d nodes already running, want 3:\n%s", got, progress.String())
	}

	// Resume after one node stopped: only that one starts.
	if stopped, err := stop(m.Nodes[1:2], stopGrace); err != nil || len(stopped) != 1 || stopped[0].Killed {
		t.Fatalf("stopping node2: %+v, %v", stopped, err)
	}
	progress.Reset()
	if _, err := Up(ctx, dir, opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "started node2") || strings.Count(progress.String(), "already running") != 2 {
		t.Errorf("resume after stopping node2:\n%s", progress.String())
	}
	if pid, _ := running(m.Nodes[1].Home); pid == pids["node2"] {
		t.Errorf("node2 kept pid %d after a restart", pid)
	}

	stopped, err := Down(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 3 {
		t.Errorf("Down stopped %+v, want 3 nodes", stopped)
	}
	for _, s := range stopped {
		if s.Killed {
			t.Errorf("%s needed SIGKILL", s.Name)
		}
	}
	for _, n := range m.Nodes {
		if _, err := os.Stat(filepath.Join(n.Home, PIDFile)); !os.IsNotExist(err) {
			t.Errorf("%s: PID file left after Down: %v", n.Name, err)
		}
	}
	sts, err = Status(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if s.Running || s.PID != 0 || s.Error == "" {
			t.Errorf("after Down: %+v", s)
		}
	}
	if stopped, err := Down(dir); err != nil || len(stopped) != 0 {
		t.Errorf("second Down: %+v, %v", stopped, err)
	}
}

func TestUpReportsANodeThatDies(t *testing.T) {
	t.Setenv(fakeNodeEnv, fakeCrash)
	dir := t.TempDir()
	t.Cleanup(func() { Down(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Up(ctx, dir, UpOptions{Create: CreateOptions{Validators: 2, Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor}, Binary: os.Args[0]})
	if err == nil {
		t.Fatal("Up succeeded with nodes that crash")
	}
	if !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "crashing on purpose") {
		t.Errorf("error does not say which node died and why: %v", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Up waited for its deadline instead of noticing the crash")
	}
}

func TestUpTimesOut(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { Down(dir) })
	t.Setenv(fakeNodeEnv, fakeServe)
	if _, err := Create(CreateOptions{Dir: dir, Validators: 1, Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // already over: Up starts the node, then gives up waiting
	_, err := Up(ctx, dir, UpOptions{Binary: os.Args[0]})
	if err == nil || !strings.Contains(err.Error(), "no first block") {
		t.Errorf("Up with an ended context: %v", err)
	}
}

func TestDownKillsANodeThatIgnoresSIGTERM(t *testing.T) {
	t.Setenv(fakeNodeEnv, fakeStubborn)
	dir := t.TempDir()
	t.Cleanup(func() { Down(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Up(ctx, dir, UpOptions{Create: CreateOptions{Validators: 1, Passphrase: testPassphrase, WalletWorkFactor: testWorkFactor}, Binary: os.Args[0]})
	if err != nil {
		t.Fatal(err)
	}
	stopped, err := stop(m.Nodes, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 1 || !stopped[0].Killed {
		t.Errorf("stopped %+v, want node1 killed", stopped)
	}
	if _, ok := running(m.Nodes[0].Home); ok {
		t.Error("node1 still running after SIGKILL")
	}
}

// The nodes a testnet command starts do not inherit GUILD_CPUPROFILE: the profile is the
// command's (the load generator's), and four nodes do not write over it.
func TestNodesDoNotInheritTheCPUProfile(t *testing.T) {
	t.Setenv(CPUProfileEnv, filepath.Join(t.TempDir(), "cpu.pb"))
	t.Setenv("GUILD_TESTNET_PROBE", "kept")
	dir, _ := upFakeNode(t, fakeServe)
	m, err := LoadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := readPID(m.Nodes[0].Home)
	if err != nil || pid == 0 {
		t.Fatalf("pid %d: %v", pid, err)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	vars := strings.Split(string(env), "\x00")
	if !slices.Contains(vars, "GUILD_TESTNET_PROBE=kept") {
		t.Fatalf("the node lost the rest of the environment: %q", vars)
	}
	for _, kv := range vars {
		if strings.HasPrefix(kv, CPUProfileEnv+"=") {
			t.Fatalf("the node inherited %s", kv)
		}
	}
}
