package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/testnet"
)

func testnetChaosCommand() *cli.Command {
	return &cli.Command{
		Name:  "chaos",
		Usage: "run load while nodes are killed, paused, wiped or restarted on a seeded schedule; check every invariant",
		Description: "Brings the testnet in --dir up (creating it if needed), submits transfers at --rate for --duration,\n" +
			"and every --interval injects one of --faults into a node chosen by --seed, bringing it back after\n" +
			"--downtime; never more than --max-down nodes are faulty at once. Then (and on Ctrl-C) it checks, over\n" +
			"every node's API: the same block at every height, valid certificates, linked headers, no transaction\n" +
			"twice, native supply conserved, no transaction the load saw committed lost; and it measures the\n" +
			"longest time without a block and how fast each node brought back reaches the tip. It exits 1 on any\n" +
			"violation. The same --seed repeats the schedule. Faults: kill (SIGKILL), pause (SIGSTOP/SIGCONT),\n" +
			"wipe (kill, delete chain data, keep keys), restart (clean stop), partition (runs as pause: cutting\n" +
			"links needs root; see make netns).\n\n" +
			"With --byzantine MODE, node --byzantine-node is restarted halfway through with --byzantine-binary (a\n" +
			"build with -tags byzantine: make byzantine-bin) as a misbehaving validator, and the report compares\n" +
			"the healthy half with the hostile one. The nodes keep running afterwards: `guild testnet down`.",
		Flags: []cli.Flag{
			testnetDirFlag(),
			&cli.IntFlag{Name: "validators", Value: 4, Usage: "validators of a new testnet"},
			&cli.StringFlag{Name: "backend", Value: "pebbledb", Usage: "storage backend of a new testnet"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the fault schedule (default: a random one, printed)"},
			&cli.DurationFlag{Name: "duration", Value: 2 * time.Minute, Usage: "how long to run the load and the faults"},
			&cli.IntFlag{Name: "rate", Value: 1000, Usage: "load, transfers per second"},
			&cli.IntFlag{Name: "accounts", Value: 64, Usage: "load accounts"},
			&cli.DurationFlag{Name: "interval", Value: 30 * time.Second, Usage: "time between faults"},
			&cli.DurationFlag{Name: "downtime", Value: 10 * time.Second, Usage: "how long each fault lasts"},
			&cli.StringFlag{Name: "faults", Value: "kill,pause", Usage: "faults to draw from: " + strings.Join(testnet.AllFaults, ",") + ", or all"},
			&cli.IntFlag{Name: "max-down", Value: 1, Usage: "most nodes faulty at once (a hostile node counts)"},
			&cli.DurationFlag{Name: "max-gap", Usage: "a longest time without a block above this is a violation (0: report only)"},
			&cli.DurationFlag{Name: "max-catchup", Usage: "a node brought back that takes longer to reach the tip is a violation (0: report only)"},
			&cli.DurationFlag{Name: "settle", Value: 30 * time.Second, Usage: "how long the check waits for the nodes to converge"},
			&cli.StringFlag{Name: "byzantine", Usage: "`MODE` a node turns to halfway: silent, flood, viewflood, replay, equivocate, badorder"},
			&cli.IntFlag{Name: "byzantine-node", Usage: "`K`: the node that turns Byzantine (default: the last)"},
			&cli.StringFlag{Name: "byzantine-binary", Value: "bin/guild-byzantine", Usage: "guild built with -tags byzantine"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: func(c *cli.Context) error {
			faults, err := testnet.ParseFaults(c.String("faults"))
			if err != nil {
				return err
			}
			if _, err := testnet.LoadManifest(c.String("dir")); err != nil {
				if err := checkValidatorCount(c, c.App.ErrWriter); err != nil {
					return err
				}
			}
			seed := c.Uint64("seed")
			if !c.IsSet("seed") {
				seed = mrand.Uint64() % 1_000_000
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				// The first Ctrl-C stops the faults and runs the check; a second one ends it all.
				<-ctx.Done()
				stop()
			}()
			pass, _ := testnet.Passphrase()
			o := testnet.ChaosOptions{
				Dir:        c.String("dir"),
				Create:     testnet.CreateOptions{Validators: c.Int("validators"), Backend: c.String("backend"), Passphrase: pass},
				Seed:       seed,
				Duration:   c.Duration("duration"),
				Interval:   c.Duration("interval"),
				Downtime:   c.Duration("downtime"),
				Faults:     faults,
				MaxDown:    c.Int("max-down"),
				Rate:       c.Int("rate"),
				Accounts:   c.Int("accounts"),
				MaxGap:     c.Duration("max-gap"),
				MaxCatchUp: c.Duration("max-catchup"),
				Settle:     c.Duration("settle"),
				Progress:   os.Stderr,
			}
			if mode := c.String("byzantine"); mode != "" {
				o.Byzantine, o.ByzantineNode, o.ByzantineBinary = mode, c.Int("byzantine-node"), c.String("byzantine-binary")
			}
			r, err := testnet.RunChaos(ctx, o)
			if r == nil {
				return err
			}
			if ctx.Err() != nil {
				fmt.Fprintln(os.Stderr, "interrupted; the invariants over what ran:")
			}
			if perr := writeReport(c, r); perr != nil {
				return perr
			}
			if err != nil {
				return err
			}
			if !r.OK() {
				return cli.Exit(fmt.Sprintf("chaos: %d invariant violations (seed %d)", r.Check.Violations(), seed), 1)
			}
			return nil
		},
	}
}

func testnetCheckCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "check the invariants of a running testnet over every node's API (what chaos checks afterwards)",
		Description: "Reads every block of every node up to the height they all reach and checks: the same block at\n" +
			"every height, certificates valid for the validator set, headers that fit their blocks and link, no\n" +
			"transaction twice, native supply conserved, GET /v1/txs agreeing. Exits 1 on a violation.",
		Flags: []cli.Flag{
			testnetDirFlag(),
			&cli.DurationFlag{Name: "settle", Value: 30 * time.Second, Usage: "how long to wait for the nodes to converge"},
		},
		Action: func(c *cli.Context) error {
			m, err := testnet.LoadManifest(c.String("dir"))
			if err != nil {
				return err
			}
			gen, err := node.LoadGenesis(filepath.Join(m.Nodes[0].Home, node.GenesisFile))
			if err != nil {
				return err
			}
			apis := make([]string, len(m.Nodes))
			for i, n := range m.Nodes {
				apis[i] = n.API
			}
			r, err := testnet.CheckInvariants(c.Context, testnet.CheckOptions{APIs: apis, Genesis: gen, Settle: c.Duration("settle")})
			if err != nil {
				return err
			}
			fmt.Printf("heights %v: all nodes compared up to %d, the highest chain checked to %d; longest time without a block %s\n",
				r.Heights, r.Checked, r.Top, r.LongestGap.Round(time.Millisecond))
			r.WriteText(os.Stdout)
			if !r.OK() {
				return cli.Exit(fmt.Sprintf("check: %d invariant violations", r.Violations()), 1)
			}
			return nil
		},
	}
}
