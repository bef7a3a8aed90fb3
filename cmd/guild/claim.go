package main

// `guild claim …`: attestations by one identity about another (KYC, certificates), with expiry and
// revocation.

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

func claimCommand() *cli.Command {
	return &cli.Command{
		Name:  "claim",
		Usage: "attestations about identities: issue, revoke, verify",
		Subcommands: []*cli.Command{
			{
				Name: "issue", Usage: "attest a claim about a subject, as an issuer identity the sender controls (a member only)", ArgsUsage: "ID",
				Flags: txFlags(
					&cli.StringFlag{Name: "issuer", Usage: "issuer identity `ID`", Required: true},
					&cli.StringFlag{Name: "subject", Usage: "subject identity `ID`", Required: true},
					&cli.StringFlag{Name: "schema", Usage: "what kind of claim, e.g. `kyc/v1`", Required: true},
					&cli.StringFlag{Name: "content-hash", Usage: "SHA-256 of the claim's content (kept off chain), 64 `HEX` characters"},
					&cli.StringFlag{Name: "content-file", Usage: "`FILE` of the claim's content, hashed here"},
					&cli.StringFlag{Name: "content", Usage: "the claim's content as `TEXT`, hashed here"},
					&cli.DurationFlag{Name: "expires-in", Usage: "the claim expires this `DURATION` from now, e.g. 8760h"},
					&cli.TimestampFlag{Name: "expires-at", Usage: "the claim expires at this `TIME` (RFC 3339)", Layout: time.RFC3339},
				),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					ch, _, err := hashInput(c, "content-hash", "content-file", "content", true)
					if err != nil {
						return err
					}
					var expires int64
					switch {
					case c.IsSet("expires-in") && c.IsSet("expires-at"):
						return walletExit("give only one of --expires-in and --expires-at", walletExitBadUsage)
					case c.IsSet("expires-in"):
						expires = time.Now().Add(c.Duration("expires-in")).UnixMilli()
					case c.IsSet("expires-at"):
						expires = c.Timestamp("expires-at").UnixMilli()
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					return sendOp(c, env, "claim", id, func(h wallet.Header) (state.TxBody, error) {
						return wallet.ClaimIssue(h, state.ClaimIssue{ID: id, Issuer: c.String("issuer"), Subject: c.String("subject"),
							Schema: c.String("schema"), ContentHash: ch, ExpiresMs: expires})
					})
				},
			},
			{
				Name: "revoke", Usage: "revoke a claim the sender's issuer identity issued", ArgsUsage: "ID",
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
					return sendOp(c, env, "claim", id, func(h wallet.Header) (state.TxBody, error) {
						return wallet.ClaimRevoke(h, state.ClaimRevoke{ID: id})
					})
				},
			},
			{
				Name:      "verify",
				Usage:     "is the claim valid now, and who issued it? (exit status 1 unless valid)",
				ArgsUsage: "ID",
				Flags: queryFlags(
					&cli.StringFlag{Name: "content-hash", Usage: "also check the claim is about this content: SHA-256, 64 `HEX` characters"},
					&cli.StringFlag{Name: "content-file", Usage: "also check the claim is about the content of `FILE`"},
					&cli.StringFlag{Name: "content", Usage: "also check the claim is about this `TEXT`"},
				),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					want, check, err := hashInput(c, "content-hash", "content-file", "content", false)
					if err != nil {
						return err
					}
					cl, err := query(c, "claim", id, func(ctx context.Context, cl *api.Client) (api.ClaimResponse, error) {
						return cl.Claim(ctx, id)
					})
					if err != nil {
						return err
					}
					if err := printRecord(c, cl); err != nil {
						return err
					}
					if check && cl.ContentHash != want.String() {
						return walletExit(fmt.Sprintf("claim %s is about other content: its hash is %s, not %s", id, cl.ContentHash, want), walletExitFailure)
					}
					if cl.Status != api.ClaimValid {
						return walletExit(fmt.Sprintf("claim %s is %s", id, cl.Status), walletExitFailure)
					}
					return nil
				},
			},
		},
	}
}
