package main

// `guild notary …`: anchor a document's SHA-256 and look up who anchored it first, and when. The
// document never leaves the machine: --file is hashed here.

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

func notaryCommand() *cli.Command {
	hashFlags := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "file", Usage: "the document `FILE`, hashed here with SHA-256 (it is not sent)"},
			&cli.StringFlag{Name: "hash", Usage: "the document's SHA-256, 64 `HEX` characters"},
		}
	}
	return &cli.Command{
		Name:  "notary",
		Usage: "notarize documents by their hash: anchor, lookup",
		Subcommands: []*cli.Command{
			{
				Name: "anchor", Usage: "anchor a document's hash; the first anchor proves priority",
				Flags: txFlags(hashFlags()...),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					h, _, err := hashInput(c, "hash", "file", "", true)
					if err != nil {
						return err
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					return sendOp(c, env, "document", h.String(), func(hd wallet.Header) (state.TxBody, error) {
						return wallet.NotaryAnchor(hd, state.NotaryAnchor{Hash: h})
					})
				},
			},
			{
				Name: "lookup", Usage: "who anchored a document, at which height and time (exit status 1 if nobody did)",
				Flags: queryFlags(hashFlags()...),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					h, _, err := hashInput(c, "hash", "file", "", true)
					if err != nil {
						return err
					}
					rec, err := query(c, "anchored document with hash", h.String(), func(ctx context.Context, cl *api.Client) (api.NotaryResponse, error) {
						return cl.Notary(ctx, h.String())
					})
					if err != nil {
						return err
					}
					return printRecord(c, rec)
				},
			},
		},
	}
}
