package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

func homeFlag() cli.Flag {
	return &cli.StringFlag{
		Name: "home", Usage: "the node's home directory (config, keys, genesis, data)",
		EnvVars: []string{"GUILD_HOME"}, Value: defaultHome(),
	}
}

func defaultHome() string {
	h, err := os.UserHomeDir()
	if err != nil {
		return ".guild/node"
	}
	return filepath.Join(h, ".guild", "node")
}

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:  "node",
		Usage: "run one organization's node",
		Subcommands: []*cli.Command{
			{
				Name: "init",
				Usage: "create a node's home: keys, config.toml and (if absent) a genesis.json for a chain of this " +
					"organization alone, with a funded account whose key goes in HOME/wallet",
				Description: "Without a genesis.json in HOME, init writes one in which this node's organization (--moniker)\n" +
					"is the only validator and the only member, controlled by a new account \"" + initAccountName + "\" funded with\n" +
					"--balance; its key is saved in HOME/wallet, encrypted with $" + wallet.PassphraseEnv + " or a passphrase\n" +
					"asked on the terminal. To join a consortium instead, replace genesis.json with the shared one\n" +
					"before the first start (and use --no-account).",
				Flags: []cli.Flag{
					homeFlag(),
					&cli.StringFlag{Name: "moniker", Usage: "this node's name in logs and status, and its organization's name in a new genesis"},
					&cli.BoolFlag{Name: "no-account", Usage: "write a genesis with a validator only: no member, no funded account"},
					&cli.Uint64Flag{Name: "balance", Value: node.DefaultInitBalance, Usage: "balance of the new genesis's account"},
					&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
				},
				Action: nodeInit,
			},
			{
				Name:  "start",
				Usage: "run the node until interrupted (SIGINT or SIGTERM stop it cleanly)",
				Flags: append(append([]cli.Flag{homeFlag(), &cli.BoolFlag{Name: "state-sync",
					Usage: "on a home with no blocks yet (new or wiped), join from the latest snapshot peers offer, " +
						"verified against a certified header, instead of replaying every block (as [statesync] enable)"}},
					logFlags()...), byzantineFlags()...),
				Action: func(c *cli.Context) error {
					home := c.String("home")
					cfg, err := node.LoadConfig(home)
					if err != nil {
						return err
					}
					lc, err := logConfig(c, cfg.Log)
					if err != nil {
						return err
					}
					logger := newLogger(c.App.ErrWriter, lc)
					cfg.ApplyMemoryLimit()
					ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
					defer stop()
					if c.Bool("state-sync") || cfg.StateSync.Enable {
						if _, err := node.StateSync(ctx, home, logger); err != nil {
							return err
						}
					}
					n, err := node.New(home, logger)
					if err != nil {
						return err
					}
					if err := applyByzantine(c, n); err != nil {
						return err
					}
					return n.Run(ctx)
				},
			},
			{
				Name: "reindex",
				Usage: "rebuild the block store's transaction and account indexes from the stored blocks " +
					"(the node must be stopped; a node also rebuilds missing or stale indexes itself at start)",
				Flags: []cli.Flag{homeFlag()},
				Action: func(c *cli.Context) error {
					cfg, err := node.LoadConfig(c.String("home"))
					if err != nil {
						return err
					}
					res, err := node.Reindex(c.String("home"), newLogger(c.App.ErrWriter, cfg.Log), func(h, of uint64, entries int) {
						fmt.Fprintf(c.App.Writer, "indexed blocks up to %d of %d (%d entries)\n", h, of, entries)
					})
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "reindexed %d blocks: %d index entries in %s\n", res.Height, res.Entries, res.Took.Round(time.Millisecond))
					return nil
				},
			},
			nodeBackupCommand(),
			nodeRestoreCommand(),
			{
				Name:   "peers",
				Usage:  "list a running node's connected peers: address, latency, gossip score and role",
				Flags:  []cli.Flag{walletNodeFlag(), walletJSONFlag()},
				Action: func(c *cli.Context) error { return printPeers(c.Context, os.Stdout, c.String("node"), c.Bool("json")) },
			},
		},
	}
}

// initAccountName names the wallet key of the account `node init` funds.
const initAccountName = "operator"

func nodeInit(c *cli.Context) error {
	home := c.String("home")
	opts := node.InitOptions{Moniker: c.String("moniker"), AccountBalance: c.Uint64("balance")}
	walletDir := filepath.Join(home, "wallet")
	_, statErr := os.Stat(filepath.Join(home, node.GenesisFile))
	if os.IsNotExist(statErr) && !c.Bool("no-account") {
		// Asked before any file is written, so that a refused passphrase leaves nothing half made.
		pass, err := wallet.Passphrase(fmt.Sprintf("Passphrase for the account key %q: ", initAccountName), true)
		switch {
		case errors.Is(err, wallet.ErrNoTerminal):
			fmt.Fprintf(c.App.ErrWriter, "note: no $%s and no terminal to ask for a passphrase: the genesis gets no "+
				"funded account and no member (set %s and run init on a fresh home to get them)\n",
				wallet.PassphraseEnv, wallet.PassphraseEnv)
		case err != nil:
			return err
		default:
			opts.Account = func() (string, state.Address, error) {
				if err := os.MkdirAll(walletDir, 0o700); err != nil {
					return "", state.Address{}, err
				}
				ks, err := wallet.Open(walletDir)
				if err != nil {
					return "", state.Address{}, err
				}
				// A key left by an earlier init whose genesis was removed is used again.
				if e, err := ks.Get(initAccountName); err == nil {
					return e.Name, e.Address, nil
				}
				e, err := ks.Create(initAccountName, pass)
				if err != nil {
					return "", state.Address{}, err
				}
				return e.Name, e.Address, nil
			}
		}
	}
	res, err := node.InitHomeWith(home, opts)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(res)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "initialised %s\n  peer ID:            %s\n  validator pub key:  %s\n", res.Home, res.PeerID, res.ValidatorPubKey)
	if res.GenesisWritten {
		fmt.Fprintln(w, "  genesis.json:       a chain of this organization alone; replace it with the consortium's genesis to join one")
	}
	if a := res.Account; a != nil {
		fmt.Fprintf(w, "  account:            %s %s, balance %d, member and validator of the chain\n", a.Name, a.Address, a.Balance)
		fmt.Fprintf(w, "  wallet:             %s (the key is encrypted with your passphrase)\n", walletDir)
	}
	fmt.Fprintf(w, "start it with: guild node start --home %s\n", res.Home)
	if a := res.Account; a != nil {
		fmt.Fprintf(w, "then:          guild wallet balance --wallet %s %s\n", walletDir, a.Name)
	}
	return nil
}

// printPeers writes GET /v1/peers as a table, or as the API's JSON.
func printPeers(ctx context.Context, w io.Writer, url string, asJSON bool) error {
	res, err := api.NewClient(url).Peers(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER ID\tROLE\tLATENCY\tSCORE\tADDRESS")
	for _, p := range res.Peers {
		role := p.Role
		if p.Name != "" {
			role += " " + p.Name
		}
		latency, score, addr := "-", "-", "-"
		if p.LatencyMs > 0 {
			latency = fmt.Sprintf("%.2f ms", p.LatencyMs)
		}
		if p.Score != nil {
			score = fmt.Sprintf("%.1f", *p.Score)
		}
		if len(p.Addrs) > 0 {
			addr = strings.Join(p.Addrs, " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.PeerID, role, latency, score, addr)
	}
	if len(res.Peers) == 0 {
		fmt.Fprintln(tw, "(no connected peers)")
	}
	return tw.Flush()
}

// logFlags set the log level and format of `node start` for one run (say, debug while chasing a
// problem) without editing config.toml: flag, then environment, then config.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", EnvVars: []string{"GUILD_LOG_LEVEL"}, Usage: "debug, info, warn or error (default: [log] level in config.toml)"},
		&cli.StringFlag{Name: "log-format", EnvVars: []string{"GUILD_LOG_FORMAT"}, Usage: "text or json (default: [log] format in config.toml)"},
	}
}

// logConfig is cfg with the --log-level and --log-format overrides, validated.
func logConfig(c *cli.Context, cfg node.LogConfig) (node.LogConfig, error) {
	if c.IsSet("log-level") {
		cfg.Level = c.String("log-level")
	}
	if c.IsSet("log-format") {
		cfg.Format = c.String("log-format")
	}
	return cfg, cfg.Validate()
}

func newLogger(w io.Writer, lc node.LogConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lc.SlogLevel()}
	if lc.JSON() {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
