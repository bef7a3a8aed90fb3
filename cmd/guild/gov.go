package main

// `guild gov …`: the consortium governs itself: members propose changes to its members, validators
// and parameters, and vote on them.

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

func govCommand() *cli.Command {
	return &cli.Command{
		Name:  "gov",
		Usage: "consortium governance: propose, vote, list, validators, upgrades",
		Subcommands: []*cli.Command{
			{
				Name:  "propose",
				Usage: "propose one change (the sender is a member; its yes vote counts at once)",
				UsageText: "guild gov propose ID --from NAME (one of)\n" +
					"   --add-member NAME --controller NAME|ADDRESS\n" +
					"   --remove-member NAME\n" +
					"   --validator NAME --power P [--pubkey HEX --peer-id ID] (--at HEIGHT | --in BLOCKS)   (power 0 removes it)\n" +
					"   --param NAME --value V\n" +
					"   --upgrade NAME [--version V] [--info TEXT] (--at HEIGHT | --in BLOCKS)   (a protocol upgrade)\n" +
					"   --cancel-upgrade NAME",
				ArgsUsage: "ID",
				Flags: txFlags(
					&cli.StringFlag{Name: "add-member", Usage: "admit an organization `NAME`"},
					&cli.StringFlag{Name: "controller", Usage: "the new member's controller account `NAME|ADDRESS`"},
					&cli.StringFlag{Name: "remove-member", Usage: "remove the member `NAME`"},
					&cli.StringFlag{Name: "validator", Usage: "add, change or (with --power 0) remove the validator `NAME`"},
					&cli.Uint64Flag{Name: "power", Usage: "the validator's voting `POWER`"},
					&cli.StringFlag{Name: "pubkey", Usage: "the validator's consensus public key, 64 `HEX` characters (see `guild node init`)"},
					&cli.StringFlag{Name: "peer-id", Usage: "the libp2p peer `ID` of the validator's node (see `guild node init`)"},
					&cli.Uint64Flag{Name: "at", Usage: "the validator change or upgrade takes effect at block `HEIGHT`"},
					&cli.Uint64Flag{Name: "in", Usage: "the validator change or upgrade takes effect `N` blocks after the current height"},
					&cli.StringFlag{Name: "param", Usage: "set the parameter `NAME` (max_block_txs, view_timeout_ms, empty_block_ms)"},
					&cli.Uint64Flag{Name: "value", Usage: "the parameter's new `VALUE`"},
					&cli.StringFlag{Name: "upgrade", Usage: "schedule the protocol upgrade `NAME` (with --at or --in; at least " + fmt.Sprint(state.MinUpgradeDelay) + " blocks ahead)"},
					&cli.UintFlag{Name: "version", Usage: "the protocol `VERSION` the upgrade brings (default: the next one)"},
					&cli.StringFlag{Name: "info", Usage: "free `TEXT` for operators: where to get the binary, its checksum"},
					&cli.StringFlag{Name: "cancel-upgrade", Usage: "cancel the scheduled upgrade `NAME` before it takes effect"},
				),
				Action: govPropose,
			},
			{
				Name: "upgrades", Usage: "show the protocol version in force and the upgrades scheduled",
				Flags: queryFlags(),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					ups, err := query(c, "upgrades", "", func(ctx context.Context, cl *api.Client) (api.UpgradesResponse, error) {
						return cl.Upgrades(ctx)
					})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return walletPrintJSON(c, ups)
					}
					fmt.Fprintf(c.App.Writer, "protocol version %d in force at height %d; the node's binary supports up to %d\n",
						ups.ProtocolVersion, ups.NextHeight, ups.SupportedVersion)
					tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "NAME\tHEIGHT\tVERSION\tSTATUS\tPROPOSAL\tINFO")
					for _, u := range ups.Upgrades {
						fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", u.Name, u.Height, u.Version, u.Status, u.Proposal, u.Info)
					}
					return tw.Flush()
				},
			},
			{
				Name: "vote", Usage: "vote on an open proposal as a member", ArgsUsage: "ID",
				Flags: txFlags(
					&cli.BoolFlag{Name: "yes", Usage: "vote for"},
					&cli.BoolFlag{Name: "no", Usage: "vote against"},
				),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					if c.Bool("yes") == c.Bool("no") {
						return walletExit("give exactly one of --yes and --no", walletExitBadUsage)
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					return sendOp(c, env, "proposal", id, func(h wallet.Header) (state.TxBody, error) {
						return wallet.GovVote(h, state.GovVote{ID: id, Yes: c.Bool("yes")})
					})
				},
			},
			{
				Name: "validators", Usage: "show the validator set deciding the next block and the sets scheduled for later heights",
				Flags: queryFlags(),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					vs, err := query(c, "validators", "", func(ctx context.Context, cl *api.Client) (api.ValidatorsResponse, error) {
						return cl.Validators(ctx)
					})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return walletPrintJSON(c, vs)
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "FROM HEIGHT\tVALIDATOR\tPOWER\tPEER ID\tPUB KEY")
					for i, set := range append([]api.ValidatorSetJSON{vs.Current}, vs.Scheduled...) {
						when := fmt.Sprintf("%d (current)", set.Height)
						if i > 0 {
							when = fmt.Sprintf("%d (scheduled)", set.Height)
						}
						for _, v := range set.Validators {
							fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", when, v.Name, v.Power, v.PeerID, v.PubKey)
						}
					}
					return tw.Flush()
				},
			},
			{
				Name: "list", Usage: "list proposals with their votes and status, or show one", ArgsUsage: "[ID]",
				Flags: queryFlags(&cli.StringFlag{Name: "status", Usage: "only proposals that are open, passed, rejected, failed or expired"}),
				Action: func(c *cli.Context) error {
					if c.NArg() == 1 {
						id, err := argID(c, "ID")
						if err != nil {
							return err
						}
						p, err := query(c, "proposal", id, func(ctx context.Context, cl *api.Client) (api.ProposalJSON, error) {
							return cl.Proposal(ctx, id)
						})
						if err != nil {
							return err
						}
						return printRecord(c, p)
					}
					if err := noArgs(c); err != nil {
						return err
					}
					ps, err := query(c, "proposals", "", func(ctx context.Context, cl *api.Client) (api.ProposalsResponse, error) {
						return cl.Proposals(ctx, c.String("status"))
					})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return walletPrintJSON(c, ps)
					}
					fmt.Fprintf(c.App.Writer, "%d members; a proposal passes with %d/%d of them voting yes\n", ps.Members, ps.Threshold.Num, ps.Threshold.Den)
					tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tSTATUS\tCHANGE\tYES\tNO\tPROPOSER")
					for _, p := range ps.Proposals {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Status, describeChange(&p), strings.Join(p.Yes, ","), strings.Join(p.No, ","), p.Proposer)
					}
					return tw.Flush()
				},
			},
		},
	}
}

func describeChange(p *api.ProposalJSON) string {
	switch {
	case p.AddMember != nil:
		return "add member " + p.AddMember.Name
	case p.RemoveMember != "":
		return "remove member " + p.RemoveMember
	case p.SetValidator != nil && p.SetValidator.Power == 0:
		return fmt.Sprintf("remove validator %s at height %d", p.SetValidator.Name, p.EffectiveHeight)
	case p.SetValidator != nil:
		return fmt.Sprintf("validator %s power %d at height %d", p.SetValidator.Name, p.SetValidator.Power, p.EffectiveHeight)
	case p.SetParam != nil:
		return fmt.Sprintf("set %s = %d", p.SetParam.Name, p.SetParam.Value)
	case p.Upgrade != nil:
		return fmt.Sprintf("upgrade %s to protocol version %d at height %d", p.Upgrade.Name, p.Upgrade.Version, p.Upgrade.Height)
	case p.CancelUpgrade != "":
		return "cancel upgrade " + p.CancelUpgrade
	}
	return "?"
}

func govPropose(c *cli.Context) error {
	id, err := argID(c, "ID")
	if err != nil {
		return err
	}
	op := state.GovPropose{ID: id}
	kinds := 0
	if name := c.String("add-member"); name != "" {
		kinds++
		if !c.IsSet("controller") {
			return walletExit("--add-member needs --controller NAME|ADDRESS: the account that acts for the new member", walletExitBadUsage)
		}
		ctl, _, err := walletResolve(c, c.String("controller"))
		if err != nil {
			return err
		}
		op.AddMember = &state.Member{Name: name, Controller: ctl}
	}
	if name := c.String("remove-member"); name != "" {
		kinds++
		op.RemoveMember = name
	}
	if name := c.String("validator"); name != "" {
		kinds++
		if !c.IsSet("power") {
			return walletExit("--validator needs --power (0 removes the validator)", walletExitBadUsage)
		}
		v := state.Validator{Name: name, Power: c.Uint64("power"), PeerID: c.String("peer-id")}
		if pk := c.String("pubkey"); pk != "" {
			if v.PubKey, err = hex.DecodeString(strings.TrimPrefix(pk, "0x")); err != nil || len(v.PubKey) != 32 {
				return walletExit("--pubkey must be 64 hex characters (the validator pub key `guild node init` prints)", walletExitBadUsage)
			}
		}
		op.SetValidator = &v
	}
	if name := c.String("param"); name != "" {
		kinds++
		if !c.IsSet("value") {
			return walletExit("--param needs --value", walletExitBadUsage)
		}
		op.SetParam = &state.Param{Name: name, Value: c.Uint64("value")}
	}
	if name := c.String("upgrade"); name != "" {
		kinds++
		op.Upgrade = &state.Upgrade{Name: name, Version: uint32(c.Uint("version")), Info: c.String("info")}
	} else if c.IsSet("version") || c.IsSet("info") {
		return walletExit("--version and --info are for --upgrade only", walletExitBadUsage)
	}
	if name := c.String("cancel-upgrade"); name != "" {
		kinds++
		op.CancelUpgrade = name
	}
	if kinds != 1 {
		return walletExit("a proposal makes exactly one change: give one of --add-member, --remove-member, --validator, --param, --upgrade, --cancel-upgrade", walletExitBadUsage)
	}
	env, err := newTxEnv(c)
	if err != nil {
		return err
	}
	if op.Upgrade != nil {
		if op.Upgrade.Height, err = heightInput(c, env, "at", "in"); err != nil {
			return err
		}
		if op.Upgrade.Version == 0 {
			// The next version after the last one scheduled, which is the only one state accepts.
			ups, err := env.client.Upgrades(c.Context)
			if err != nil {
				return walletNodeFail(env.client, err)
			}
			op.Upgrade.Version = ups.ProtocolVersion + 1
			for _, u := range ups.Upgrades {
				op.Upgrade.Version = max(op.Upgrade.Version, u.Version+1)
			}
		}
		return sendOp(c, env, "proposal", id, func(h wallet.Header) (state.TxBody, error) {
			return wallet.GovPropose(h, op)
		})
	}
	if op.SetValidator != nil {
		if op.EffectiveHeight, err = heightInput(c, env, "at", "in"); err != nil {
			return err
		}
		if op.SetValidator.Power > 0 && op.SetValidator.PubKey == nil {
			// Changing an existing validator's power: keep its key and peer ID.
			vs, err := env.client.Validators(c.Context)
			if err != nil {
				return walletNodeFail(env.client, err)
			}
			for _, v := range append([]api.ValidatorSetJSON{vs.Current}, vs.Scheduled...) {
				for _, old := range v.Validators {
					if old.Name == op.SetValidator.Name {
						op.SetValidator.PubKey, _ = hex.DecodeString(old.PubKey)
						if op.SetValidator.PeerID == "" {
							op.SetValidator.PeerID = old.PeerID
						}
					}
				}
			}
			if op.SetValidator.PubKey == nil {
				return walletExit("validator "+op.SetValidator.Name+" is new: give its --pubkey and --peer-id (from `guild node init`)", walletExitBadUsage)
			}
		}
	} else if c.IsSet("at") || c.IsSet("in") {
		return walletExit("--at and --in are for validator changes and upgrades only", walletExitBadUsage)
	}
	return sendOp(c, env, "proposal", id, func(h wallet.Header) (state.TxBody, error) {
		return wallet.GovPropose(h, op)
	})
}
