package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Files a testnet adds to each node's home.
const (
	PIDFile = "node.pid"
	LogFile = "node.log"
)

// stopGrace is how long Down waits after SIGTERM before it sends SIGKILL.
const stopGrace = 10 * time.Second

// readPID reads HOME/node.pid; 0 if there is none.
func readPID(home string) (int, error) {
	b, err := os.ReadFile(filepath.Join(home, PIDFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("testnet: %s holds no PID", filepath.Join(home, PIDFile))
	}
	return pid, nil
}

// running reports the PID of the node whose home is home, if its PID file names a live process
// that is that node.
func running(home string) (int, bool) {
	pid, err := readPID(home)
	if err != nil || pid == 0 {
		return 0, false
	}
	return pid, alive(pid, home)
}

// alive reports whether process pid exists, is not a zombie, and — where /proc tells — has home
// as an argument of its command line. The last check is for PID reuse: after a reboot or a long
// time, the PID in a stale node.pid may belong to an unrelated process, which Down must not
// signal.
func alive(pid int, home string) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	procDir := filepath.Join("/proc", strconv.Itoa(pid))
	if _, err := os.Stat("/proc/self"); err != nil {
		return true // no procfs (macOS): signal 0 is all we can ask
	}
	// A zombie answers signal 0 until its parent reaps it; it is no longer a node. The state is
	// the field after the parenthesised command name, which may itself hold spaces or ')'.
	stat, err := os.ReadFile(filepath.Join(procDir, "stat"))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	// For a moment after exec the kernel shows an empty command line; a node started just now
	// has one within microseconds. (A kernel thread's stays empty: not a node.)
	var cmdline []byte
	for try := 0; len(cmdline) == 0 && try < 20; try++ {
		if try > 0 {
			time.Sleep(time.Millisecond)
		}
		if cmdline, err = os.ReadFile(filepath.Join(procDir, "cmdline")); err != nil {
			return false
		}
	}
	// Whole arguments only: DIR/node1 must not match the command line of DIR/node10.
	for _, arg := range bytes.Split(cmdline, []byte{0}) {
		if string(arg) == home || string(arg) == "--home="+home {
			return true
		}
	}
	return false
}

// CPUProfileEnv names the variable that makes the guild binary write a CPU profile of the
// command it runs to the file it names. The nodes a testnet starts do not inherit it: a profile
// of `testnet load` is the load generator's alone, and the nodes do not overwrite it.
const CPUProfileEnv = "GUILD_CPUPROFILE"

// start runs `binary node start --home HOME [extra...]` in its own process group, so it outlives the
// command that started it and a Ctrl-C in that terminal does not reach it, with stdout and stderr
// appended to HOME/node.log, and writes HOME/node.pid. The returned channel is closed when the
// process exits: start reaps it, since an unreaped child is a zombie that signal 0 calls alive.
func start(binary, home string, extra ...string) (pid int, exited <-chan struct{}, err error) {
	logf, err := os.OpenFile(filepath.Join(home, LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, nil, err
	}
	defer logf.Close() // the child has its own copy
	args := append([]string{"node", "start", "--home", home}, extra...)
	fmt.Fprintf(logf, "\n==== testnet: starting %s %s at %s\n", binary, strings.Join(args, " "), time.Now().Format(time.RFC3339))
	cmd := exec.Command(binary, args...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, CPUProfileEnv+"=") })
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("testnet: starting node in %s: %w", home, err)
	}
	pid = cmd.Process.Pid
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	if err := os.WriteFile(filepath.Join(home, PIDFile), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		syscall.Kill(-pid, syscall.SIGKILL)
		return 0, nil, err
	}
	return pid, done, nil
}

// Stopped says how Down stopped one node.
type Stopped struct {
	Name   string
	PID    int
	Killed bool // it outlived SIGTERM by the grace period and got SIGKILL
}

// stop sends SIGTERM to the process group of every running node, waits up to grace for all of
// them to exit, sends SIGKILL to those left, and removes every PID file.
func stop(nodes []Node, grace time.Duration) ([]Stopped, error) {
	var out []Stopped
	var homes []string
	for _, n := range nodes {
		pid, ok := running(n.Home)
		if !ok {
			continue
		}
		if err := signalGroup(pid, syscall.SIGTERM); err != nil {
			return out, fmt.Errorf("testnet: stopping %s (pid %d): %w", n.Name, pid, err)
		}
		out = append(out, Stopped{Name: n.Name, PID: pid})
		homes = append(homes, n.Home)
	}
	// Polling: these processes are not our children (`down` runs after `up` has exited), so there
	// is nothing to wait on.
	deadline := time.Now().Add(grace)
	for i := range out {
		for alive(out[i].PID, homes[i]) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(out[i].PID, homes[i]) {
			signalGroup(out[i].PID, syscall.SIGKILL)
			out[i].Killed = true
		}
	}
	// SIGKILL cannot be caught, but it lands asynchronously; give it a moment.
	for i := range out {
		for end := time.Now().Add(2 * time.Second); alive(out[i].PID, homes[i]) && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	var errs []error
	for _, n := range nodes {
		if err := os.Remove(filepath.Join(n.Home, PIDFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// signalGroup signals the process group that start made; a node started some other way is not a
// group leader, and gets the signal alone.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		err = syscall.Kill(pid, sig)
	}
	if errors.Is(err, syscall.ESRCH) {
		return nil // gone already
	}
	return err
}

// logTail gives the last lines of a node's log, for an operator whose node died.
func logTail(home string, lines int) string {
	f, err := os.Open(filepath.Join(home, LogFile))
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const maxBytes = 8 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxBytes {
		f.Seek(fi.Size()-maxBytes, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
