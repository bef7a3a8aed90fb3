package main

// `guild ballot …`: votes among registered identities, one vote each, tallied on chain.

import (
	"context"
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

func ballotCommand() *cli.Command {
	return &cli.Command{
		Name:  "ballot",
		Usage: "ballots among identities: create, vote, tally",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "open a ballot", ArgsUsage: "ID",
				Flags: txFlags(
					&cli.StringFlag{Name: "title", Usage: "what is voted on", Required: true},
					&cli.StringSliceFlag{Name: "option", Usage: "an option `TEXT` (repeat, 2 or more)", Required: true},
					&cli.StringSliceFlag{Name: "eligible", Usage: "an identity `ID` that may vote (repeat)", Required: true},
					&cli.Uint64Flag{Name: "closes", Usage: "votes are accepted in blocks below `HEIGHT`"},
					&cli.Uint64Flag{Name: "blocks", Usage: "close `N` blocks after the current height"},
				),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					closes, err := heightInput(c, env, "closes", "blocks")
					if err != nil {
						return err
					}
					return sendOp(c, env, "ballot", id, func(h wallet.Header) (state.TxBody, error) {
						return wallet.BallotCreate(h, state.BallotCreate{ID: id, Title: c.String("title"),
							Options: c.StringSlice("option"), Eligible: c.StringSlice("eligible"), Closes: closes})
					})
				},
			},
			{
				Name: "vote", Usage: "cast an identity's vote (the sender controls the identity)", ArgsUsage: "ID",
				Flags: txFlags(
					&cli.StringFlag{Name: "identity", Usage: "the voting identity's `ID`", Required: true},
					&cli.StringFlag{Name: "option", Usage: "the option's `TEXT` or its index from 0", Required: true},
				),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					b, err := query(c, "ballot", id, func(ctx context.Context, cl *api.Client) (api.BallotResponse, error) {
						return cl.Ballot(ctx, id)
					})
					if err != nil {
						return err
					}
					opt, err := optionIndex(b.Options, c.String("option"))
					if err != nil {
						return walletExit(err.Error(), walletExitBadUsage)
					}
					return sendOp(c, env, "ballot", id, func(h wallet.Header) (state.TxBody, error) {
						return wallet.BallotVote(h, state.BallotVote{ID: id, Identity: c.String("identity"), Option: opt})
					})
				},
			},
			{
				Name: "tally", Aliases: []string{"show"}, Usage: "show a ballot and its count", ArgsUsage: "ID",
				Flags: queryFlags(),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					b, err := query(c, "ballot", id, func(ctx context.Context, cl *api.Client) (api.BallotResponse, error) {
						return cl.Ballot(ctx, id)
					})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return walletPrintJSON(c, b)
					}
					phase := "open until height " + strconv.FormatUint(b.Closes, 10)
					if b.Closed {
						phase = "closed at height " + strconv.FormatUint(b.Closes, 10)
					}
					fmt.Fprintf(c.App.Writer, "%s: %s (%s; %d of %d eligible voted)\n", b.ID, b.Title, phase, b.Votes, len(b.Eligible))
					for i, o := range b.Options {
						var n uint64
						if i < len(b.Tally) {
							n = b.Tally[i]
						}
						fmt.Fprintf(c.App.Writer, "  %3d  %s\n", n, o)
					}
					return nil
				},
			},
		},
	}
}

// optionIndex finds s among options, by text or by index.
func optionIndex(options []string, s string) (uint32, error) {
	for i, o := range options {
		if o == s {
			return uint32(i), nil
		}
	}
	if i, err := strconv.ParseUint(s, 10, 32); err == nil && i < uint64(len(options)) {
		return uint32(i), nil
	}
	return 0, fmt.Errorf("option %q is not one of %q", s, options)
}
