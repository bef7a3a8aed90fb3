package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/testnet"
	"github.com/guild-ledger/guild/wallet"
)

const defaultTestnetDir = "./guild-testnet"

func testnetDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "dir", Value: defaultTestnetDir, Usage: "the testnet's directory (manifest, node homes, wallet)"}
}

func testnetCommand() *cli.Command {
	return &cli.Command{
		Name:  "testnet",
		Usage: "run a consortium of validator nodes on this machine, for development and tests",
		Subcommands: []*cli.Command{
			testnetUpCommand(),
			testnetStatusCommand(),
			testnetDownCommand(),
			testnetLoadCommand(),
			testnetBenchCommand(),
			testnetChaosCommand(),
			testnetCheckCommand(),
			testnetFaultCommand("kill", "crash node K with SIGKILL (no clean shutdown)"),
			testnetFaultCommand("restart", "stop node K cleanly if it runs, start it again from its data"),
			testnetFaultCommand("pause", "freeze node K with SIGSTOP (a hung node)"),
			testnetFaultCommand("resume", "let a paused node K run again (SIGCONT)"),
			testnetWipeCommand(),
			testnetJoinCommand(),
		},
	}
}

func testnetUpCommand() *cli.Command {
	return &cli.Command{
		Name:  "up",
		Usage: "create a testnet (if DIR holds none) and start its nodes; wait for the first block",
		Description: "Each organization gets a validator node in DIR/node<i>, a separate process that keeps running\n" +
			"after `up` returns (stop them with `guild testnet down`). Run `up` again on the same DIR to restart\n" +
			"nodes that are not running. Wallet keys (faucet, org1..orgN) are encrypted with $GUILD_PASSPHRASE,\n" +
			"or with \"" + wallet.DefaultTestnetPassphrase + "\" if it is unset.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "validators", Value: 4, Usage: "number of organizations, each running one validator (new testnet only)"},
			testnetDirFlag(),
			&cli.StringFlag{Name: "backend", Value: "pebbledb", Usage: "storage backend: pebbledb, goleveldb or memdb (new testnet only)"},
			&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "how long to wait for every node's first block"},
		},
		Action: func(c *cli.Context) error {
			dir := c.String("dir")
			pass, source := testnet.Passphrase()
			m, err := testnet.LoadManifest(dir)
			if err == nil && c.IsSet("validators") && c.Int("validators") != len(m.Nodes) {
				fmt.Fprintf(os.Stderr, "note: %s holds a %d-validator testnet; resuming it (--validators ignored)\n", dir, len(m.Nodes))
			}
			if err != nil {
				if err := checkValidatorCount(c, c.App.ErrWriter); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, c.Duration("timeout"))
			defer cancel()
			m, err = testnet.Up(ctx, dir, testnet.UpOptions{
				Create:   testnet.CreateOptions{Validators: c.Int("validators"), Backend: c.String("backend"), Passphrase: pass},
				Progress: os.Stderr,
			})
			if err != nil {
				if m != nil {
					fmt.Fprintf(os.Stderr, "nodes that started keep running; stop them with: %s testnet down --dir %s\n", os.Args[0], m.Dir)
				}
				return err
			}
			printTestnet(os.Stdout, m, source)
			return nil
		},
	}
}

// checkValidatorCount refuses a validator count that makes no chain (testnet.Create would read
// 0 as its default of 4, which is not what someone who typed 0 meant) and warns below 4: n = 3f+1
// validators tolerate f faulty ones, so with 1 to 3 one stopped validator stops the chain. Small
// testnets stay allowed: they are how one develops on a laptop.
func checkValidatorCount(c *cli.Context, warn io.Writer) error {
	n := c.Int("validators")
	switch {
	case n < 1:
		return &usageError{cmd: c.Command.HelpName, err: fmt.Errorf("--validators %d: want at least 1 (4 or more to tolerate a faulty one)", n)}
	case n < 4:
		fmt.Fprintf(warn, "WARN: %d validators tolerate f = 0 faults (n = 3f+1): one stopped or misbehaving "+
			"validator stops the chain; use --validators 4 or more to tolerate one\n", n)
	}
	return nil
}

// printTestnet shows where everything is and what to try next.
func printTestnet(w io.Writer, m *testnet.Manifest, passphraseSource string) {
	joined := 0
	for _, n := range m.Nodes {
		if n.Joined {
			joined++
		}
	}
	if joined == 0 {
		fmt.Fprintf(w, "testnet %s is up: %d validators, first block final on every node\n\n", m.ChainID, len(m.Nodes))
	} else {
		fmt.Fprintf(w, "testnet %s is up: %d genesis validators with their first block final, and %d joined "+
			"node(s), running (they connect once governance schedules them as validators)\n\n", m.ChainID, len(m.Nodes)-joined, joined)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tAPI\tP2P")
	for _, n := range m.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, n.API, n.P2P)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nwallet  %s\nkeys    %s (%s)\nlogs    %s\n",
		m.Wallet, strings.Join(m.WalletKeys(), ", "), passphraseSource,
		filepath.Join(m.Dir, "node<i>", testnet.LogFile))
	// Commands as this binary was invoked (./bin/guild, or guild on the PATH), so they paste.
	self := os.Args[0]
	fmt.Fprintf(w, "\ntry:\n")
	fmt.Fprintf(w, "  %s wallet balance --wallet %s --node %s %s\n", self, m.Wallet, m.Nodes[0].API, testnet.FaucetName)
	env := ""
	if os.Getenv(testnet.PassphraseEnv) == "" {
		env = testnet.PassphraseEnv + "=" + wallet.DefaultTestnetPassphrase + " "
	}
	fmt.Fprintf(w, "  %s%s wallet send --wallet %s --node %s --from %s --to %s --amount 100 --wait\n",
		env, self, m.Wallet, m.Nodes[len(m.Nodes)-1].API, testnet.FaucetName, testnet.OrgName(1))
	fmt.Fprintf(w, "  %s testnet status --dir %s\n", self, m.Dir)
	fmt.Fprintf(w, "  %s testnet load --dir %s --rate 1000 --duration 30s\n", self, m.Dir)
	fmt.Fprintf(w, "  %s testnet down --dir %s\n", self, m.Dir)
}

func testnetStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show each node: running, height, peers, view, leader",
		Flags: []cli.Flag{
			testnetDirFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
			sts, err := testnet.Status(c.Context, c.String("dir"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(sts)
			}
			leaders := validatorNames(c.String("dir"))
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tNODE\tAPI\tRUNNING\tHEIGHT\tPEERS\tVIEW\tLEADER")
			for i, s := range sts {
				if !s.Running {
					state := "no"
					if s.PID != 0 {
						state = fmt.Sprintf("no (pid %d alive, API silent)", s.PID)
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t-\t-\t-\t-\n", i+1, s.Name, s.API, state)
					continue
				}
				leader := fmt.Sprint(s.Leader)
				if s.LeaderName != "" {
					leader = s.LeaderName
				} else if int(s.Leader) < len(leaders) {
					leader = leaders[s.Leader]
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\tyes\t%d\t%d\t%d\t%s\n", i+1, s.Name, s.API, s.Height, s.Peers, s.View, leader)
			}
			return tw.Flush()
		},
	}
}

// validatorNames lists the genesis validators' names by index, to show leaders by name; nil if
// the genesis cannot be read.
func validatorNames(dir string) []string {
	m, err := testnet.LoadManifest(dir)
	if err != nil {
		return nil
	}
	gen, err := node.LoadGenesis(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
	if err != nil {
		return nil
	}
	names := make([]string, len(gen.Validators))
	for i, v := range gen.Validators {
		names[i] = v.Name
	}
	return names
}

func testnetDownCommand() *cli.Command {
	return &cli.Command{
		Name:  "down",
		Usage: "stop every node of the testnet (SIGTERM, then SIGKILL after 10 s); data stays",
		Flags: []cli.Flag{testnetDirFlag()},
		Action: func(c *cli.Context) error {
			stopped, err := testnet.Down(c.String("dir"))
			for _, s := range stopped {
				if s.Killed {
					fmt.Printf("killed %s (pid %d): still running 10 s after SIGTERM\n", s.Name, s.PID)
				} else {
					fmt.Printf("stopped %s (pid %d)\n", s.Name, s.PID)
				}
			}
			if err == nil && len(stopped) == 0 {
				fmt.Println("no node was running")
			}
			return err
		},
	}
}

// testnetFaultCommand is one of the faults a tester injects into node K, numbered from 1 in the
// order `testnet status` lists.
func testnetFaultCommand(name, usage string) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Flags: []cli.Flag{
			testnetDirFlag(),
			&cli.IntFlag{Name: "node", Required: true, Usage: "`K`: which node, from 1, as `testnet status` lists them"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "restart: how long to wait for the API"},
			&cli.StringFlag{Name: "binary", Usage: "restart: run the guild binary at `PATH` instead of this one (a rolling upgrade)"},
		},
		Action: func(c *cli.Context) error {
			dir, k := c.String("dir"), c.Int("node")
			switch name {
			case "kill":
				s, err := testnet.Kill(dir, k)
				if err == nil {
					fmt.Printf("killed %s (pid %d)\n", s.Name, s.PID)
				}
				return err
			case "pause", "resume":
				f := testnet.Pause
				if name == "resume" {
					f = testnet.Resume
				}
				n, pid, err := f(dir, k)
				if err == nil {
					fmt.Printf("%sd %s (pid %d)\n", name, n.Name, pid)
				}
				return err
			default:
				ctx, cancel := context.WithTimeout(context.Background(), c.Duration("timeout"))
				defer cancel()
				bin := c.String("binary")
				if bin != "" {
					// The node outlives this command: a relative path would depend on where it ran.
					var err error
					if bin, err = filepath.Abs(bin); err != nil {
						return err
					}
				}
				n, pid, err := testnet.Restart(ctx, dir, k, bin)
				if err == nil {
					fmt.Printf("restarted %s (pid %d), API %s\n", n.Name, pid, n.API)
				}
				return err
			}
		},
	}
}

func testnetWipeCommand() *cli.Command {
	return &cli.Command{
		Name:  "wipe",
		Usage: "delete stopped node K's chain data (blocks, state, WAL), keeping its keys, config and genesis",
		Description: "Refuses while the node runs (stop it with `testnet kill`). `testnet restart --node K` then starts\n" +
			"it empty, and block sync fetches and verifies the chain from its peers.",
		Flags: []cli.Flag{
			testnetDirFlag(),
			&cli.IntFlag{Name: "node", Required: true, Usage: "`K`: which node, from 1, as `testnet status` lists them"},
		},
		Action: func(c *cli.Context) error {
			n, size, err := testnet.Wipe(c.String("dir"), c.Int("node"))
			if err == nil {
				fmt.Printf("wiped %s: %.1f MiB of chain data deleted; keys, config and genesis kept\n", n.Name, float64(size)/(1<<20))
			}
			return err
		},
	}
}

func testnetLoadCommand() *cli.Command {
	return &cli.Command{
		Name:  "load",
		Usage: "submit signed transfers at a target rate and measure finalized throughput and latency",
		Description: "Funds --accounts fresh accounts from the faucet, then for --duration submits transfers of 1 among\n" +
			"them at --rate, spread over the nodes, and follows node 1's blocks to time each transaction from\n" +
			"submission to finality. The faucet key is decrypted with $GUILD_PASSPHRASE, or the default testnet\n" +
			"passphrase if it is unset.",
		Flags: []cli.Flag{
			testnetDirFlag(),
			&cli.IntFlag{Name: "rate", Value: 1000, Usage: "target submissions per second"},
			&cli.DurationFlag{Name: "duration", Value: 30 * time.Second, Usage: "how long to submit"},
			&cli.IntFlag{Name: "accounts", Value: 64, Usage: "fresh accounts sending to one another"},
			&cli.StringFlag{Name: "nodes", Value: "all", Usage: "nodes to submit to: all, or a comma-separated list of names or numbers (1,3); blocks are followed on the first"},
			&cli.IntFlag{Name: "workers", Usage: "concurrent HTTP submitters (default: one per account, at most 512)"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var nodes []string
			if spec := c.String("nodes"); spec != "all" {
				nodes = strings.Split(spec, ",")
			}
			r, err := testnet.RunLoad(ctx, testnet.LoadOptions{
				Dir:      c.String("dir"),
				Rate:     c.Int("rate"),
				Duration: c.Duration("duration"),
				Accounts: c.Int("accounts"),
				Nodes:    nodes,
				Workers:  c.Int("workers"),
				Progress: os.Stderr,
			})
			if r == nil {
				return err
			}
			if errors.Is(err, context.Canceled) {
				fmt.Fprintln(os.Stderr, "interrupted; what was measured so far:")
				err = nil
			}
			if perr := writeReport(c, r); perr != nil {
				return perr
			}
			return err
		},
	}
}

func testnetBenchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "sweep offered rates, a fresh testnet each, and print one throughput table beside the verify ceiling",
		Description: "Measures the ed25519 verify ceiling with the node's own verifier, then for each --rates value\n" +
			"creates a fresh testnet in DIR/rate-<R>, runs `testnet load` at that rate for --duration, samples every\n" +
			"node's CPU and peak RSS, and stops and deletes the testnet (--keep keeps it, stopped). Prints one\n" +
			"table (offered, finalized tx/s, p50/p99, refused 503/429, failed, per-node peak RSS and CPU) and\n" +
			"writes it as JSON to --out. The machine's load average is shown per run: numbers from a shared\n" +
			"machine are only comparable within one sweep.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Value: "./guild-bench", Usage: "where the per-rate testnets are made (and deleted)"},
			&cli.StringFlag{Name: "rates", Value: "1000,2000,4000,8000,16000", Usage: "offered tx/s, comma-separated"},
			&cli.DurationFlag{Name: "duration", Value: 20 * time.Second, Usage: "submission window per rate"},
			&cli.IntFlag{Name: "validators", Value: 4, Usage: "validators per testnet"},
			&cli.StringFlag{Name: "backend", Value: "pebbledb", Usage: "storage backend"},
			&cli.IntFlag{Name: "accounts", Value: 256, Usage: "load accounts per run"},
			&cli.StringFlag{Name: "out", Value: "bench.json", Usage: "write the table as JSON here (\"\" for none)"},
			&cli.BoolFlag{Name: "keep", Usage: "keep each run's (stopped) testnet directory"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON instead of the table"},
			&cli.StringFlag{Name: "proposals", Usage: "every node's consensus.proposals: reference or full (default: the node's)"},
		},
		Action: func(c *cli.Context) error {
			rates, err := testnet.ParseRates(c.String("rates"))
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			r, err := testnet.Bench(ctx, testnet.BenchOptions{
				Dir: c.String("dir"), Rates: rates, Duration: c.Duration("duration"),
				Validators: c.Int("validators"), Backend: c.String("backend"), Accounts: c.Int("accounts"),
				Keep: c.Bool("keep"), Proposals: c.String("proposals"), Progress: os.Stderr,
			})
			if r == nil {
				return err
			}
			if errors.Is(err, context.Canceled) {
				fmt.Fprintln(os.Stderr, "interrupted; what was measured so far:")
				err = nil
			}
			if out := c.String("out"); out != "" {
				if werr := r.WriteJSON(out); werr != nil {
					return werr
				}
			}
			if perr := writeReport(c, r); perr != nil {
				return perr
			}
			return err
		},
	}
}

// writeReport prints a load or chaos report: indented JSON with --json, else its text form.
func writeReport(c *cli.Context, r interface{ WriteText(io.Writer) }) error {
	if c.Bool("json") {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	r.WriteText(os.Stdout)
	return nil
}

func testnetJoinCommand() *cli.Command {
	return &cli.Command{
		Name:  "join",
		Usage: "add a node for a new organization; print what the governance proposal admitting it needs",
		Description: "Makes DIR/node<N+1> with its own keys, a config like the others' and the testnet's genesis, a\n" +
			"wallet key for the organization, and starts the node. It is not a validator, and the validators'\n" +
			"p2p allowlists refuse it until governance schedules it as one: propose AddMember (its wallet\n" +
			"address) and SetValidator (its name, validator key and peer ID, at a future height), and have the\n" +
			"members vote. The block that passes the change lets it connect; it syncs the chain and validates\n" +
			"from the effective height on.",
		Flags: []cli.Flag{
			testnetDirFlag(),
			&cli.StringFlag{Name: "name", Usage: "the organization's name (wallet key, validator name); default org<N+1>"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long to wait for the node's API"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
			pass, source := testnet.Passphrase()
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			m, j, err := testnet.Join(ctx, c.String("dir"), testnet.JoinOptions{Name: c.String("name"), Passphrase: pass})
			if err != nil {
				if j != nil && j.PID != 0 {
					fmt.Fprintf(os.Stderr, "the node keeps running; stop it with: %s testnet down --dir %s\n", os.Args[0], m.Dir)
				}
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(j)
			}
			fmt.Printf("started %s (pid %d) for organization %s: not a validator yet, and refused by the\n"+
				"validators' allowlists until governance schedules it as one\n\n", j.Node.Name, j.PID, j.Org)
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "name\t%s\n", j.Org)
			fmt.Fprintf(tw, "validator pub key\t%s\n", j.ValidatorPubKey)
			fmt.Fprintf(tw, "peer id\t%s\n", j.PeerID)
			fmt.Fprintf(tw, "wallet address\t%s (key %s in %s, %s)\n", j.Address, j.Org, m.Wallet, source)
			fmt.Fprintf(tw, "api\t%s\n", j.Node.API)
			fmt.Fprintf(tw, "p2p\t%s\n", j.Node.P2P)
			fmt.Fprintf(tw, "log\t%s\n", filepath.Join(j.Node.Home, testnet.LogFile))
			return tw.Flush()
		},
	}
}
