package main

// `guild item …`: unique assets (a diamond, a medicine batch, a land title) and their provenance.

import (
	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

func itemCommand() *cli.Command {
	return &cli.Command{
		Name:  "item",
		Usage: "unique items: register, transfer, history",
		Subcommands: []*cli.Command{
			{
				Name: "register", Usage: "register a unique item with the hash of its metadata", ArgsUsage: "ID",
				Flags: txFlags(
					&cli.StringFlag{Name: "metadata-hash", Usage: "SHA-256 of the item's metadata, 64 `HEX` characters"},
					&cli.StringFlag{Name: "metadata-file", Usage: "`FILE` of metadata (a certificate...), hashed here; only the hash goes on chain"},
					&cli.StringFlag{Name: "metadata", Usage: "metadata `TEXT`, hashed here; only the hash goes on chain"},
					&cli.StringFlag{Name: "owner", Usage: "first owner, `NAME|ADDRESS` (default: the sender)"},
				),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					mh, _, err := hashInput(c, "metadata-hash", "metadata-file", "metadata", true)
					if err != nil {
						return err
					}
					var owner *state.Address
					if o := c.String("owner"); o != "" {
						a, _, err := walletResolve(c, o)
						if err != nil {
							return err
						}
						owner = &a
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					return sendOp(c, env, "item", id, func(h wallet.Header) (state.TxBody, error) {
						return wallet.ItemRegister(h, state.ItemRegister{ID: id, MetadataHash: mh, Owner: owner})
					})
				},
			},
			{
				Name: "transfer", Usage: "give an item the sender owns to another account", ArgsUsage: "ID",
				Flags: txFlags(&cli.StringFlag{Name: "to", Usage: "new owner `NAME|ADDRESS`", Required: true}),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					to, _, err := walletResolve(c, c.String("to"))
					if err != nil {
						return err
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					return sendOp(c, env, "item", id, func(h wallet.Header) (state.TxBody, error) {
						return wallet.ItemTransfer(h, state.ItemTransfer{ID: id, To: to})
					})
				},
			},
			{
				Name: "history", Aliases: []string{"show"}, Usage: "show an item, its owner and its whole history, oldest first", ArgsUsage: "ID",
				Flags:  queryFlags(),
				Action: showByID("item", (*api.Client).Item),
			},
		},
	}
}
