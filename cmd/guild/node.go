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
	"time"

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
				Flags: append([]cli.Flag{homeFlag()}, byzantineFlags()...),
				Action: func(c *cli.Context) error {
					home := c.String("home")
					cfg, err := node.LoadConfig(home)
					if err != nil {
						return err
					}
					logger := newLogger(cfg.Log)
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
				Name: "reindex",
				Usage: "rebuild the block store's transaction and account indexes from the stored blocks " +
					"(the node must be stopped; a node also rebuilds missing or stale indexes itself at start)",
				Flags: []cli.Flag{homeFlag()},
				Action: func(c *cli.Context) error {
					cfg, err := node.LoadConfig(c.String("home"))
					if err != nil {
						return err
					}
					res, err := node.Reindex(c.String("home"), newLogger(cfg.Log), func(h, of uint64, entries int) {
						fmt.Printf("indexed blocks up to %d of %d (%d entries)\n", h, of, entries)
					})
					if err != nil {
						return err
					}
					fmt.Printf("reindexed %d blocks: %d index entries in %s\n", res.Height, res.Entries, res.Took.Round(time.Millisecond))
					return nil
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

func newLogger(lc node.LogConfig) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(lc.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
