package main

// `guild asset …`: fungible asset classes (create, mint, burn, send) and their supply.

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

func assetCommand() *cli.Command {
	return &cli.Command{
		Name:  "asset",
		Usage: "fungible assets: create a class, mint, burn, send, show",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create an asset class issued by --from (a consortium member)", ArgsUsage: "SYMBOL",
				Flags: txFlags(
					&cli.StringFlag{Name: "name", Usage: "the asset's `NAME`", Required: true},
					&cli.UintFlag{Name: "decimals", Usage: "decimal places of its display unit"},
					&cli.Uint64Flag{Name: "max-supply", Usage: "most units that may ever exist (0: unlimited)"},
				),
				Action: func(c *cli.Context) error {
					sym, err := argSymbol(c)
					if err != nil {
						return err
					}
					if c.Uint("decimals") > state.MaxDecimals {
						return walletExit("--decimals must be at most 18", walletExitBadUsage)
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					return sendOp(c, env, "asset", sym, func(h wallet.Header) (state.TxBody, error) {
						return wallet.AssetCreate(h, state.AssetCreate{Symbol: sym, Name: c.String("name"),
							Decimals: uint8(c.Uint("decimals")), MaxSupply: c.Uint64("max-supply")})
					})
				},
			},
			{
				Name: "mint", Usage: "mint units of an asset that --from issues", ArgsUsage: "SYMBOL",
				Flags: txFlags(
					&cli.StringFlag{Name: "to", Usage: "recipient `NAME|ADDRESS`", Required: true},
					&cli.Uint64Flag{Name: "amount", Usage: "units to mint, `N` > 0", Required: true},
				),
				Action: func(c *cli.Context) error {
					sym, err := argSymbol(c)
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
					return sendOp(c, env, "asset", sym, func(h wallet.Header) (state.TxBody, error) {
						return wallet.AssetMint(h, state.AssetMint{Symbol: sym, To: to, Amount: c.Uint64("amount")})
					})
				},
			},
			{
				Name: "burn", Usage: "destroy units of an asset from the sender's balance", ArgsUsage: "SYMBOL",
				Flags: txFlags(&cli.Uint64Flag{Name: "amount", Usage: "units to burn, `N` > 0", Required: true}),
				Action: func(c *cli.Context) error {
					sym, err := argSymbol(c)
					if err != nil {
						return err
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					return sendOp(c, env, "asset", sym, func(h wallet.Header) (state.TxBody, error) {
						return wallet.AssetBurn(h, state.AssetBurn{Symbol: sym, Amount: c.Uint64("amount")})
					})
				},
			},
			{
				Name: "send", Usage: "send units of an asset", ArgsUsage: "SYMBOL",
				Flags: txFlags(
					&cli.StringFlag{Name: "to", Usage: "recipient `NAME|ADDRESS`", Required: true},
					&cli.Uint64Flag{Name: "amount", Usage: "units to send, `N` > 0", Required: true},
				),
				Action: func(c *cli.Context) error {
					sym, err := argSymbol(c)
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
					return sendOp(c, env, "", "", func(h wallet.Header) (state.TxBody, error) {
						return wallet.AssetTransfer(h, state.AssetTransfer{Symbol: sym, To: to, Amount: c.Uint64("amount")})
					})
				},
			},
			{
				Name: "show", Usage: "show an asset class: issuer, supply, maximum", ArgsUsage: "SYMBOL",
				Flags: queryFlags(),
				Action: func(c *cli.Context) error {
					sym, err := argSymbol(c)
					if err != nil {
						return err
					}
					a, err := query(c, "asset", sym, func(ctx context.Context, cl *api.Client) (api.AssetResponse, error) {
						return cl.Asset(ctx, sym)
					})
					if err != nil {
						return err
					}
					return printRecord(c, a)
				},
			},
		},
	}
}

func argSymbol(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", walletExit("usage: guild "+c.Command.FullName()+" [flags] SYMBOL", walletExitBadUsage)
	}
	sym := c.Args().First()
	if err := wallet.CheckSymbol(sym); err != nil {
		return "", walletExit(err.Error(), walletExitBadUsage)
	}
	return sym, nil
}
