package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
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
				Name:  "init",
				Usage: "create a node's home: keys, config.toml and (if absent) a one-validator genesis.json",
				Flags: []cli.Flag{
					homeFlag(),
					&cli.StringFlag{Name: "moniker", Usage: "this node's name in logs and status"},
					&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
				},
				Action: func(c *cli.Context) error {
					res, err := node.InitHome(c.String("home"), c.String("moniker"))
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return json.NewEncoder(os.Stdout).Encode(res)
					}
					fmt.Printf("initialised %s\n  peer ID:            %s\n  validator pub key:  %s\n", res.Home, res.PeerID, res.ValidatorPubKey)
					if res.GenesisWritten {
						fmt.Println("  genesis.json:       a one-validator chain; replace it with the consortium's genesis to join one")
					}
					fmt.Printf("start it with: guild node start --home %s\n", res.Home)
					return nil
				},
			},
			{
				Name:  "start",
				Usage: "run the node until interrupted (SIGINT or SIGTERM stop it cleanly)",
				Flags: append(append([]cli.Flag{homeFlag()}, logFlags()...), byzantineFlags()...),
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
					n, err := node.New(home, logger)
					if err != nil {
						return err
					}
					if err := applyByzantine(c, n); err != nil {
						return err
					}
					ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
					defer stop()
					return n.Run(ctx)
				},
			},
			{
				Name:   "peers",
				Usage:  "list a running node's connected peers: address, latency, gossip score and role",
				Flags:  []cli.Flag{walletNodeFlag(), walletJSONFlag()},
				Action: func(c *cli.Context) error { return printPeers(c.Context, os.Stdout, c.String("node"), c.Bool("json")) },
			},
		},
	}
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
