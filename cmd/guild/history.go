package main

// `guild account history`: an account's transactions, newest first.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
)

func accountHistoryCommand() *cli.Command {
	return &cli.Command{
		Name:      "history",
		Usage:     "list the transactions that touched an account, newest first (sent, received, signed, as escrow party, ...)",
		ArgsUsage: "NAME|ADDRESS",
		Flags: queryFlags(
			&cli.IntFlag{Name: "limit", Usage: fmt.Sprintf("transactions per page, `N` from 1 to %d", api.MaxPageLimit), Value: 20},
			&cli.StringFlag{Name: "cursor", Usage: "start after this `CURSOR` (printed at the end of a page)"},
			&cli.BoolFlag{Name: "all", Usage: "follow the pages to the account's first transaction"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return walletExit("usage: guild account history [flags] NAME|ADDRESS", walletExitBadUsage)
			}
			if l := c.Int("limit"); l < 1 || l > api.MaxPageLimit {
				return walletExit(fmt.Sprintf("--limit must be from 1 to %d", api.MaxPageLimit), walletExitBadUsage)
			}
			addr, _, err := walletResolve(c, c.Args().First())
			if err != nil {
				return err
			}
			client := api.NewClient(c.String("node"))
			err = printAccountHistory(c.Context, c.App.Writer, client, addr.String(), c.Int("limit"), c.String("cursor"), c.Bool("all"), c.Bool("json"))
			if err != nil {
				return walletNodeFail(client, err)
			}
			return nil
		},
	}
}

// printAccountHistory writes one page of GET /v1/accounts/{address}/txs (every page with all)
// as a table followed by the next page's cursor, or as the API's JSON (the pages merged).
func printAccountHistory(ctx context.Context, w io.Writer, client *api.Client, address string, limit int, cursor string, all, asJSON bool) error {
	var res api.AccountTxsResponse
	for first := true; first || all && cursor != ""; first = false {
		page, err := client.AccountTxs(ctx, address, limit, cursor)
		if err != nil {
			return err
		}
		if first {
			res = page
		} else {
			res.Txs = append(res.Txs, page.Txs...)
		}
		res.NextCursor, cursor = page.NextCursor, page.NextCursor
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if len(res.Txs) == 0 {
		_, err := fmt.Fprintf(w, "no transactions touched %s up to block %d\n", res.Address, res.Height)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BLOCK\tTIME\tOP\tSTATUS\tFROM\tHASH")
	for _, tx := range res.Txs {
		status := tx.Status
		if tx.Error != "" {
			status += ": " + tx.Error
		}
		fmt.Fprintf(tw, "%d/%d\t%s\t%s\t%s\t%s\t%s\n", tx.Height, tx.Index, tx.Time, tx.Op, status, tx.From, tx.Hash)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.NextCursor != "" {
		_, err := fmt.Fprintf(w, "more: --cursor %s\n", res.NextCursor)
		return err
	}
	return nil
}
