package main

// `guild escrow …`: value locked for a beneficiary, released by an arbiter or by the preimage of a
// hash-lock before a deadline height, refunded to the depositor after it.

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

func escrowCommand() *cli.Command {
	return &cli.Command{
		Name:  "escrow",
		Usage: "escrows: create, release, refund, show",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "lock an amount from the sender for a beneficiary", ArgsUsage: "ID",
				Flags: txFlags(
					&cli.StringFlag{Name: "to", Usage: "beneficiary `NAME|ADDRESS`", Required: true},
					&cli.Uint64Flag{Name: "amount", Usage: "amount to lock, `N` > 0", Required: true},
					&cli.StringFlag{Name: "asset", Usage: "asset `SYMBOL` (default: the native currency)"},
					&cli.StringFlag{Name: "arbiter", Usage: "`NAME|ADDRESS` that may release it"},
					&cli.StringFlag{Name: "hashlock", Usage: "SHA-256 of a secret, 64 `HEX` characters: whoever shows the secret releases it"},
					&cli.StringFlag{Name: "secret", Usage: "a secret `TEXT`: its SHA-256 is the hash-lock (keep the text to release)"},
					&cli.Uint64Flag{Name: "deadline", Usage: "`HEIGHT` from which only a refund is possible"},
					&cli.Uint64Flag{Name: "blocks", Usage: "deadline `N` blocks after the current height"},
				),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					to, _, err := walletResolve(c, c.String("to"))
					if err != nil {
						return err
					}
					var arbiter *state.Address
					if a := c.String("arbiter"); a != "" {
						addr, _, err := walletResolve(c, a)
						if err != nil {
							return err
						}
						arbiter = &addr
					}
					lock, locked, err := hashInput(c, "hashlock", "", "secret", false)
					if err != nil {
						return err
					}
					if !locked && arbiter == nil {
						return walletExit("an escrow needs --arbiter, --secret (or --hashlock), or both", walletExitBadUsage)
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					deadline, err := heightInput(c, env, "deadline", "blocks")
					if err != nil {
						return err
					}
					op := state.EscrowCreate{ID: id, Beneficiary: to, Asset: c.String("asset"), Amount: c.Uint64("amount"),
						Arbiter: arbiter, Deadline: deadline}
					if locked {
						op.HashLock = &lock
					}
					return sendOp(c, env, "escrow", id, func(h wallet.Header) (state.TxBody, error) {
						return wallet.EscrowCreate(h, op)
					})
				},
			},
			{
				Name: "release", Usage: "pay an escrow to its beneficiary: as its arbiter, or with the secret", ArgsUsage: "ID",
				Flags: txFlags(
					&cli.StringFlag{Name: "secret", Usage: "the secret `TEXT` whose SHA-256 is the hash-lock"},
					&cli.StringFlag{Name: "preimage", Usage: "the secret as `HEX` bytes"},
				),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					var pre []byte
					switch {
					case c.IsSet("secret") && c.IsSet("preimage"):
						return walletExit("give only one of --secret and --preimage", walletExitBadUsage)
					case c.IsSet("secret"):
						pre = []byte(c.String("secret"))
					case c.IsSet("preimage"):
						if pre, err = hex.DecodeString(strings.TrimPrefix(c.String("preimage"), "0x")); err != nil {
							return walletExit("--preimage must be hex", walletExitBadUsage)
						}
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					if pre != nil {
						// Check the secret here: a wrong one would be rejected on chain, after
						// revealing what was typed to every node.
						if e, err := env.client.Escrow(c.Context, id); err == nil && e.HashLock != "" && e.HashLock != state.Hash(sha256.Sum256(pre)).String() {
							return walletExit("the secret does not match escrow "+id+"'s hash-lock", walletExitFailure)
						}
					}
					return sendOp(c, env, "escrow", id, func(h wallet.Header) (state.TxBody, error) {
						return wallet.EscrowRelease(h, state.EscrowRelease{ID: id, Preimage: pre})
					})
				},
			},
			{
				Name: "refund", Usage: "return an escrow to its depositor (the sender), from its deadline on", ArgsUsage: "ID",
				Flags: txFlags(),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					return sendOp(c, env, "escrow", id, func(h wallet.Header) (state.TxBody, error) {
						return wallet.EscrowRefund(h, state.EscrowRefund{ID: id})
					})
				},
			},
			{
				Name: "show", Usage: "show an escrow and its status (open, released, refunded)", ArgsUsage: "ID",
				Flags:  queryFlags(),
				Action: showByID("escrow", (*api.Client).Escrow),
			},
		},
	}
}
