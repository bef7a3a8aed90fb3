package main

// `guild account …`: an account's balances, signatories and membership; multi-signature control.

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

func accountCommand() *cli.Command {
	return &cli.Command{
		Name:  "account",
		Usage: "accounts: show, history, send, set-signers (multi-signature)",
		Subcommands: []*cli.Command{
			accountHistoryCommand(),
			{
				Name: "show", Usage: "show an account: balance, asset balances, nonce, signatories, membership", ArgsUsage: "NAME|ADDRESS",
				Flags: queryFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return walletExit("usage: guild account show [flags] NAME|ADDRESS", walletExitBadUsage)
					}
					addr, _, err := walletResolve(c, c.Args().First())
					if err != nil {
						return err
					}
					a, err := query(c, "account", addr.String(), func(ctx context.Context, cl *api.Client) (api.AccountResponse, error) {
						return cl.Account(ctx, addr.String())
					})
					if err != nil {
						return err
					}
					return printRecord(c, a)
				},
			},
			{
				Name:  "send",
				Usage: "send native currency from an account, also a multi-signature one (--account, with --out to co-sign)",
				Flags: txFlags(
					&cli.StringFlag{Name: "to", Usage: "recipient `NAME|ADDRESS`", Required: true},
					&cli.Uint64Flag{Name: "amount", Usage: "amount to send, `N` > 0", Required: true},
				),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
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
					if env.account.Balance < c.Uint64("amount") {
						return walletFail(fmt.Errorf("insufficient funds: %s has %d, cannot send %d", env.from, env.account.Balance, c.Uint64("amount")))
					}
					return sendOp(c, env, "", "", func(h wallet.Header) (state.TxBody, error) {
						return wallet.Transfer(h, state.Transfer{To: to, Amount: c.Uint64("amount")})
					})
				},
			},
			{
				Name:  "set-signers",
				Usage: "make the account multi-signature: from then on a transaction needs --quorum of the --signer keys (no --signer: back to its own key)",
				Flags: txFlags(
					&cli.StringSliceFlag{Name: "signer", Usage: "a signatory: a wallet key `NAME` or a 64-hex-character public key (repeat)"},
					&cli.UintFlag{Name: "quorum", Usage: "signatures needed, `Q` of the signatories"},
				),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					var signers [][]byte
					for _, s := range c.StringSlice("signer") {
						pk, err := resolvePubKey(c, s)
						if err != nil {
							return err
						}
						signers = append(signers, pk)
					}
					if len(signers) > 0 && !c.IsSet("quorum") {
						return walletExit("--signer needs --quorum", walletExitBadUsage)
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					return sendOp(c, env, "account", env.from.String(), func(h wallet.Header) (state.TxBody, error) {
						return wallet.SetSigners(h, state.SetSigners{Signers: signers, Quorum: uint32(c.Uint("quorum"))})
					})
				},
			},
		},
	}
}
