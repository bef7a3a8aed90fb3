package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"guild"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVersionCommand(t *testing.T) {
	code, out, errOut := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "guild "+version+"\n") || !strings.Contains(out, "commit: ") || !strings.Contains(out, "go:     go") {
		t.Fatalf("guild version: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, "version", "--json")
	var b buildInfo
	if err := json.Unmarshal([]byte(out), &b); code != 0 || err != nil || b.Version != version || b.GoVersion == "" || b.Commit == "" {
		t.Fatalf("guild version --json: exit %d, %q: %v", code, out, err)
	}
	if code, out, _ = runCLI(t, "--version"); code != 0 || !strings.Contains(out, "commit: ") {
		t.Fatalf("guild --version: exit %d, %q", code, out)
	}
}

func TestCompletionCommand(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "complete -o bashdefault -o default -o nospace -F _guild_bash_autocomplete guild",
		"zsh":  "compdef _guild_zsh_autocomplete guild",
		"fish": "complete -r -c guild -n '__fish_guild_no_subcommand' -a 'testnet'",
	} {
		code, out, errOut := runCLI(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("guild completion %s: exit %d, stderr %q, script lacks %q:\n%s", shell, code, errOut, want, out)
		}
	}
	if code, _, errOut := runCLI(t, "completion", "tcsh"); code != 2 || !strings.Contains(errOut, `"tcsh"`) {
		t.Errorf("guild completion tcsh: exit %d, %q", code, errOut)
	}
	// What the scripts call: the subcommands of `guild node`. urfave/cli reads os.Args there.
	args := []string{"guild", "node", "--generate-bash-completion"}
	saved := os.Args
	os.Args = args
	defer func() { os.Args = saved }()
	code, out, _ := runCLI(t, args[1:]...)
	if code != 0 || !strings.Contains(out, "init") || !strings.Contains(out, "start") {
		t.Errorf("guild node --generate-bash-completion: exit %d, %q", code, out)
	}
}

// A bad flag value gets the error once, a pointer to the help and exit code 2, not the error, the
// whole help and the error again.
func TestUsageErrorIsShort(t *testing.T) {
	for _, tt := range []struct {
		args []string
		cmd  string
		err  string
	}{
		{[]string{"testnet", "up", "--validators", "many"}, "guild testnet up", `invalid value "many" for flag -validators`},
		{[]string{"node", "start", "--no-such-flag"}, "guild node start", "flag provided but not defined: -no-such-flag"},
		{[]string{"--bogus"}, "guild", "flag provided but not defined: -bogus"},
	} {
		code, out, errOut := runCLI(t, tt.args...)
		all := out + errOut
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", tt.args, code)
		}
		if strings.Count(all, tt.err) != 1 {
			t.Errorf("%q: want the error %q once, got:\n%s", tt.args, tt.err, all)
		}
		if !strings.Contains(errOut, "run '"+tt.cmd+" --help' for usage") {
			t.Errorf("%q: no pointer to %q --help:\n%s", tt.args, tt.cmd, all)
		}
		if strings.Contains(all, "USAGE:") || strings.Count(all, "\n") > 2 {
			t.Errorf("%q: printed the help:\n%s", tt.args, all)
		}
	}
}

func TestValidatorCount(t *testing.T) {
	for _, n := range []string{"0", "-3"} {
		code, out, errOut := runCLI(t, "testnet", "up", "--dir", t.TempDir(), "--validators", n)
		if code != 2 || !strings.Contains(errOut, "--validators "+n+": want at least 1") {
			t.Errorf("--validators %s: exit %d\n%s%s", n, code, out, errOut)
		}
		code, _, errOut = runCLI(t, "testnet", "chaos", "--dir", t.TempDir(), "--validators", n)
		if code != 2 || !strings.Contains(errOut, "--validators "+n+": want at least 1") {
			t.Errorf("chaos --validators %s: exit %d\n%s", n, code, errOut)
		}
	}
	// 1 to 3 are allowed (small testnets are for development) with a warning that f = 0.
	for n, wantWarn := range map[int]bool{1: true, 3: true, 4: false, 7: false} {
		var warn bytes.Buffer
		app := &cli.App{
			Flags: []cli.Flag{&cli.IntFlag{Name: "validators"}},
			Action: func(c *cli.Context) error {
				return checkValidatorCount(c, &warn)
			},
		}
		if err := app.Run([]string{"x", "--validators", strconv.Itoa(n)}); err != nil {
			t.Fatalf("%d validators: %v", n, err)
		}
		if got := strings.Contains(warn.String(), "WARN: "+strconv.Itoa(n)+" validators tolerate f = 0 faults"); got != wantWarn {
			t.Errorf("%d validators: warning %q", n, warn.String())
		}
	}
}

func TestNodeStartLogSettings(t *testing.T) {
	home := t.TempDir()
	if code, _, errOut := runCLI(t, "node", "init", "--home", home); code != 0 {
		t.Fatalf("node init: %s", errOut)
	}
	// Bad values from the flag or the environment are refused before the node starts.
	code, _, errOut := runCLI(t, "node", "start", "--home", home, "--log-level", "loud")
	if code != 1 || !strings.Contains(errOut, `log level "loud": want debug, info, warn or error`) {
		t.Errorf("--log-level loud: exit %d, %q", code, errOut)
	}
	t.Setenv("GUILD_LOG_FORMAT", "xml")
	code, _, errOut = runCLI(t, "node", "start", "--home", home)
	if code != 1 || !strings.Contains(errOut, `log format "xml": want text or json`) {
		t.Errorf("GUILD_LOG_FORMAT=xml: exit %d, %q", code, errOut)
	}

	// Flag over environment over config.
	t.Setenv("GUILD_LOG_LEVEL", "error")
	t.Setenv("GUILD_LOG_FORMAT", "json")
	for _, tt := range []struct {
		args []string
		want node.LogConfig
	}{
		{nil, node.LogConfig{Level: "error", Format: "json"}},
		{[]string{"--log-level", "debug"}, node.LogConfig{Level: "debug", Format: "json"}},
		{[]string{"--log-format", "text"}, node.LogConfig{Level: "error", Format: "text"}},
	} {
		var got node.LogConfig
		app := &cli.App{Flags: logFlags(), Action: func(c *cli.Context) (err error) {
			got, err = logConfig(c, node.LogConfig{Level: "info", Format: "text"})
			return err
		}}
		if err := app.Run(append([]string{"x"}, tt.args...)); err != nil || got != tt.want {
			t.Errorf("%q: got %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
	os.Unsetenv("GUILD_LOG_LEVEL")
	os.Unsetenv("GUILD_LOG_FORMAT")
	var got node.LogConfig
	app := &cli.App{Flags: logFlags(), Action: func(c *cli.Context) (err error) {
		got, err = logConfig(c, node.LogConfig{Level: "warn", Format: "text"})
		return err
	}}
	if err := app.Run([]string{"x"}); err != nil || got != (node.LogConfig{Level: "warn", Format: "text"}) {
		t.Errorf("config only: got %+v, %v", got, err)
	}
}

// GUILD_CPUPROFILE writes a profile when the command ends; a path that cannot be written is a
// warning, and the command runs.
func TestCPUProfileEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pb")
	var stderr strings.Builder
	startCPUProfile(path, &stderr)()
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 || stderr.Len() != 0 {
		t.Fatalf("profile %v %v, stderr %q", fi, err, stderr.String())
	}
	startCPUProfile(filepath.Join(t.TempDir(), "missing", "cpu.pb"), &stderr)()
	if !strings.Contains(stderr.String(), "WARN no CPU profile") {
		t.Fatalf("stderr %q, want a warning", stderr.String())
	}
}
