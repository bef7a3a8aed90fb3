// Command guild is Guild's single binary: the node, the wallet and the testnet launcher.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/testnet"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	stop := startCPUProfile(os.Getenv(testnet.CPUProfileEnv), os.Stderr)
	code := run(os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// startCPUProfile profiles the whole command's CPU into path, if set ($GUILD_CPUPROFILE): what
// the load generator or a node spends, for `go tool pprof BINARY PATH`. The returned function
// ends the profile and writes it out. A profile that cannot start is a warning, not a failure.
func startCPUProfile(path string, stderr io.Writer) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "guild: WARN no CPU profile (%s=%s): %v\n", testnet.CPUProfileEnv, path, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "guild: WARN CPU profile %s: %v\n", path, err)
		}
	}
}

// run is main without the exit, so that tests see the exit code: 0, 1 for a failed command, 2 for
// a command line that could not be parsed (as flag and the shells do), and node.ExitUpgradeRequired
// (3) for a node that stopped, or would not start, because its binary does not support the
// protocol version in force at its next height.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp()
	app.Writer, app.ErrWriter = stdout, stderr
	err := app.Run(flagsFirst(app, args))
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "guild: %v\nrun '%s --help' for usage\n", ue.err, ue.cmd)
		return 2
	}
	var up *node.UpgradeRequiredError
	if errors.As(err, &up) {
		fmt.Fprintln(stderr, "guild:", up)
		return node.ExitUpgradeRequired
	}
	fmt.Fprintln(stderr, "guild:", err)
	return 1
}

// usageError is a command line that could not be parsed (unknown flag, bad flag value). urfave/cli
// prints such an error, then the whole help, and main printed it again: one line and a pointer to
// the help is easier to read.
type usageError struct {
	cmd string // e.g. "guild testnet up"
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func onUsageError(c *cli.Context, err error, _ bool) error {
	name := "guild"
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	return &usageError{cmd: name, err: err}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "guild",
		Usage:   "a Byzantine-fault-tolerant ledger for consortiums",
		Version: versionString(),
		Commands: []*cli.Command{
			nodeCommand(),
			genesisCommand(),
			walletCommand(),
			testnetCommand(),
			accountCommand(),
			assetCommand(),
			itemCommand(),
			identityCommand(),
			claimCommand(),
			notaryCommand(),
			escrowCommand(),
			privateCommand(),
			ballotCommand(),
			govCommand(),
			txCommand(),
			watchCommand(),
			proofCommand(),
			verifyCommand(),
			versionCommand(),
		},
		EnableBashCompletion: true,
		OnUsageError:         onUsageError,
	}
	app.Commands = append(app.Commands, completionCommand(app))
	// urfave/cli v2 gives each command its own OnUsageError (the App's covers only the root).
	var set func([]*cli.Command)
	set = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = onUsageError
			set(c.Subcommands)
		}
	}
	set(app.Commands)
	return app
}
