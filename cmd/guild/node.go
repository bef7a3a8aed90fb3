package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
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
				Flags: []cli.Flag{homeFlag()},
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
					ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
					defer stop()
					return n.Run(ctx)
				},
			},
		},
	}
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
