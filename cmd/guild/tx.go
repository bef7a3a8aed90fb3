package main

// `guild tx …`: transactions saved to a file (`--out FILE` on any command that sends one), so that
// the officers of a multi-signature account co-sign them offline, then one of them submits.

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

type txFileInfoJSON struct {
	File       string   `json:"file"`
	ChainID    string   `json:"chain_id"`
	From       string   `json:"from"`
	Nonce      uint64   `json:"nonce"`
	Operation  string   `json:"operation"`
	HashToSign string   `json:"hash_to_sign"`
	SignedBy   []string `json:"signed_by"` // addresses of the signing keys
}

func txFileInfo(path string, tx *state.Tx) txFileInfoJSON {
	sh, _ := wallet.SignHash(&tx.Body)
	out := txFileInfoJSON{File: path, ChainID: tx.Body.ChainID, From: tx.Body.From.String(), Nonce: tx.Body.Nonce,
		Operation: describeOp(&tx.Body), HashToSign: sh.String(), SignedBy: []string{}}
	for _, s := range tx.Sigs {
		out.SignedBy = append(out.SignedBy, state.AddressFromPubKey(s.PubKey).String())
	}
	return out
}

func txFileArg(c *cli.Context) (string, *state.Tx, error) {
	if c.NArg() != 1 {
		return "", nil, walletExit("usage: guild "+c.Command.FullName()+" [flags] FILE", walletExitBadUsage)
	}
	path := c.Args().First()
	tx, err := wallet.ReadTxFile(path)
	if err != nil {
		return "", nil, walletFail(err)
	}
	return path, tx, nil
}

func txCommand() *cli.Command {
	return &cli.Command{
		Name:  "tx",
		Usage: "transactions in files, for offline co-signing: show, sign, submit; and any transaction's status",
		Subcommands: []*cli.Command{
			{
				Name: "show", Usage: "show what a transaction file does and who has signed it", ArgsUsage: "FILE",
				Flags: []cli.Flag{walletJSONFlag()},
				Action: func(c *cli.Context) error {
					path, tx, err := txFileArg(c)
					if err != nil {
						return err
					}
					return printRecord(c, txFileInfo(path, tx))
				},
			},
			{
				Name:      "sign",
				Usage:     "co-sign a transaction file with one or more keys (offline: no node needed); the file is updated in place",
				ArgsUsage: "FILE",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "from", Usage: "`NAME` of a signing key (repeat for several)", Required: true},
					walletDirFlag(), walletJSONFlag(),
				},
				Action: func(c *cli.Context) error {
					path, tx, err := txFileArg(c)
					if err != nil {
						return err
					}
					ks, err := walletOpen(c)
					if err != nil {
						return err
					}
					info := txFileInfo(path, tx)
					fmt.Fprintf(c.App.ErrWriter, "signing %s\n  chain %s, nonce %d, hash to sign %s\n", info.Operation, info.ChainID, info.Nonce, info.HashToSign)
					for _, name := range c.StringSlice("from") {
						if _, err := ks.Get(name); err != nil {
							return walletFail(err)
						}
						key, err := loadKey(ks, name)
						if err != nil {
							return err
						}
						if err := wallet.AddSignature(tx, key); err != nil {
							return walletFail(fmt.Errorf("%s: %w", name, err))
						}
					}
					if err := wallet.WriteTxFile(path, tx); err != nil {
						return walletFail(err)
					}
					info = txFileInfo(path, tx)
					if c.Bool("json") {
						return walletPrintJSON(c, info)
					}
					fmt.Fprintf(c.App.Writer, "%s: %d signatures\n", path, len(tx.Sigs))
					return nil
				},
			},
			{
				Name: "status", Usage: "ask a node about a transaction: pending, committed (at which height) or rejected (why)", ArgsUsage: "HASH",
				Flags: queryFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return walletExit("usage: guild tx status [flags] HASH", walletExitBadUsage)
					}
					h, err := state.ParseHash(strings.TrimPrefix(c.Args().First(), "0x"))
					if err != nil {
						return walletExit(err.Error(), walletExitBadUsage)
					}
					st, err := query(c, "transaction", h.String(), func(ctx context.Context, cl *api.Client) (api.TxStatus, error) {
						return cl.Tx(ctx, h.String())
					})
					if err != nil {
						return err
					}
					return printRecord(c, st)
				},
			},
			{
				Name: "submit", Usage: "submit a signed transaction file to a node", ArgsUsage: "FILE",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "wait", Usage: "wait until the transaction is committed or rejected (exit status 1 if rejected)"},
					&cli.DurationFlag{Name: "timeout", Usage: "how long --wait waits", Value: walletSendTimeout},
					walletNodeFlag(), walletJSONFlag(),
				},
				Action: func(c *cli.Context) error {
					_, tx, err := txFileArg(c)
					if err != nil {
						return err
					}
					if len(tx.Sigs) == 0 {
						return walletExit("the transaction has no signature yet: `guild tx sign FILE --from NAME`", walletExitFailure)
					}
					return submitTx(c, api.NewClient(c.String("node")), nil, tx, "", "")
				},
			},
		},
	}
}
