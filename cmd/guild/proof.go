package main

// `guild proof …` fetches a proof file from a node; `guild verify` checks one offline, with the
// chain's genesis and nothing else (node/light; docs/proofs.md).

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/node/light"
	"github.com/guild-ledger/guild/state"
)

func proofCommand() *cli.Command {
	flags := func(own ...cli.Flag) []cli.Flag {
		return append(own,
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "write the proof to `FILE`", Required: true},
			walletNodeFlag())
	}
	heightFlag := &cli.StringFlag{Name: "height", Usage: "prove the state after block `N` (default: the latest provable block)"}
	// stateSub is a subcommand proving one kind of record, named by args positional arguments.
	stateSub := func(kind, usage string, args ...string) *cli.Command {
		return &cli.Command{
			Name: kind, Usage: usage, ArgsUsage: strings.Join(args, " "),
			Flags: flags(heightFlag),
			Action: func(c *cli.Context) error {
				if c.NArg() != len(args) {
					return walletExit(fmt.Sprintf("guild proof %s takes %s", kind, strings.Join(args, " ")), walletExitBadUsage)
				}
				return fetchProof(c, func(ctx context.Context, cl *api.Client, h *uint64) ([]byte, error) {
					return cl.StateProof(ctx, kind, c.Args().Slice(), h)
				})
			},
		}
	}
	return &cli.Command{
		Name:  "proof",
		Usage: "fetch a proof that anyone can check offline with `guild verify` and the genesis",
		Subcommands: []*cli.Command{
			{
				Name: "tx", Usage: "a committed transaction's outcome (applied or rejected)", ArgsUsage: "HASH",
				Flags: flags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return walletExit("guild proof tx takes the transaction's hash", walletExitBadUsage)
					}
					return fetchProof(c, func(ctx context.Context, cl *api.Client, _ *uint64) ([]byte, error) {
						return cl.TxProof(ctx, c.Args().First())
					})
				},
			},
			stateSub(state.KindAccount, "an account's balance and nonce", "ADDRESS"),
			stateSub(state.KindBalance, "an account's balance of an asset", "ADDRESS", "SYMBOL"),
			stateSub(state.KindItem, "an item: its owner and history length", "ID"),
			stateSub(state.KindIdentity, "an identity", "ID"),
			stateSub(state.KindClaim, "a claim, revoked or not, or that it does not exist", "ID"),
			stateSub(state.KindEscrow, "an escrow", "ID"),
			{
				Name: "notary", Usage: "who anchored a document and when, or that nobody did",
				Flags: flags(heightFlag,
					&cli.StringFlag{Name: "file", Usage: "the document `FILE`, hashed here with SHA-256 (it is not sent)"},
					&cli.StringFlag{Name: "hash", Usage: "the document's SHA-256, 64 `HEX` characters"}),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					h, _, err := hashInput(c, "hash", "file", "", true)
					if err != nil {
						return err
					}
					return fetchProof(c, func(ctx context.Context, cl *api.Client, height *uint64) ([]byte, error) {
						return cl.StateProof(ctx, state.KindNotary, []string{h.String()}, height)
					})
				},
			},
			{
				Name: "state", Usage: "any state entry by kind and arguments (see GET /v1/proofs/state)", ArgsUsage: "KIND [ARG...]",
				Flags: flags(heightFlag),
				Action: func(c *cli.Context) error {
					if c.NArg() < 1 {
						return walletExit("guild proof state takes a kind and its arguments", walletExitBadUsage)
					}
					return fetchProof(c, func(ctx context.Context, cl *api.Client, h *uint64) ([]byte, error) {
						return cl.StateProof(ctx, c.Args().First(), c.Args().Tail(), h)
					})
				},
			},
		},
	}
}

func fetchProof(c *cli.Context, get func(ctx context.Context, cl *api.Client, height *uint64) ([]byte, error)) error {
	var height *uint64
	if s := c.String("height"); s != "" {
		h, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return walletExit(fmt.Sprintf("--height %q: want a block height", s), walletExitBadUsage)
		}
		height = &h
	}
	client := api.NewClient(c.String("node"))
	// The state after block h and the receipts of block h are certified by block h+1: right after
	// a commit the node cannot prove it yet. Wait for the next block rather than fail.
	deadline := time.Now().Add(30 * time.Second)
	b, err := get(c.Context, client, height)
	for err != nil && strings.Contains(err.Error(), "not provable yet") && time.Now().Before(deadline) {
		select {
		case <-c.Context.Done():
			return walletNodeFail(client, c.Context.Err())
		case <-time.After(200 * time.Millisecond):
		}
		b, err = get(c.Context, client, height)
	}
	if err != nil {
		return walletNodeFail(client, err)
	}
	f, err := light.Parse(b)
	if err != nil {
		return walletExit(fmt.Sprintf("node %s answered something that is not a proof file: %v", client.Base(), err), walletExitFailure)
	}
	if err := os.WriteFile(c.String("out"), b, 0o644); err != nil {
		return walletExit(err.Error(), walletExitFailure)
	}
	what := "transaction receipt in block " + strconv.FormatUint(f.Height, 10)
	if f.State != nil {
		what = fmt.Sprintf("%s after block %d", light.Describe(f.State.Key), f.Height)
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: proof of %s (chain %s, certified by block %d)\n", c.String("out"), what, f.ChainID, f.Height+1)
	return nil
}

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a proof file offline, with the chain's genesis and nothing else",
		ArgsUsage: "FILE",
		Description: "Exit status: 0 the proof holds; 3 malformed file; 4 another chain; 5 validator set\n" +
			"of the height not established; 6 too few signers; 7 bad signature; 8 path mismatch;\n" +
			"1 anything else (unreadable files). See docs/proofs.md.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "genesis", Usage: "the chain's genesis `FILE`", Required: true},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return walletExit("guild verify takes one proof file", walletExitBadUsage)
			}
			gb, err := os.ReadFile(c.String("genesis"))
			if err != nil {
				return walletExit(err.Error(), walletExitFailure)
			}
			g, err := light.ParseGenesis(gb)
			if err != nil {
				return walletExit(err.Error(), walletExitFailure)
			}
			fb, err := os.ReadFile(c.Args().First())
			if err != nil {
				return walletExit(err.Error(), walletExitFailure)
			}
			res, err := verifyFile(fb, g)
			if err != nil {
				return cli.Exit("guild verify: FAILED: "+err.Error(), light.ExitCode(err))
			}
			w := c.App.Writer
			switch {
			case res.Tx != nil:
				outcome := "applied"
				if !res.Applied {
					outcome = "rejected"
				}
				fmt.Fprintf(w, "OK: transaction %x was committed in block %d of chain %s and %s\n", res.TxHash[:], res.Height, res.ChainID, outcome)
			case res.Present:
				fmt.Fprintf(w, "OK: after block %d of chain %s, %s is\n  %s\n", res.Height, res.ChainID, light.Describe(res.Key), light.KeyValueJSON(res.Key, res.Value))
			default:
				fmt.Fprintf(w, "OK: after block %d of chain %s, %s does not exist\n", res.Height, res.ChainID, light.Describe(res.Key))
			}
			fmt.Fprintf(w, "  certified by 2f+1 validators of the set in force, followed from genesis through %d validator set(s)\n", res.Epochs)
			return nil
		},
	}
}

func verifyFile(b []byte, g *light.Genesis) (*light.Result, error) {
	f, err := light.Parse(b)
	if err != nil {
		return nil, err
	}
	return light.Verify(f, g)
}
