package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/wallet"
)

func nodeBackupCommand() *cli.Command {
	return &cli.Command{
		Name: "backup",
		Usage: "write a consistent copy of a node's home (stores, config.toml, genesis.json) to a tar.gz; " +
			"a running node makes it through its admin listener ([admin] listen), a stopped one is read directly",
		Flags: []cli.Flag{
			homeFlag(),
			&cli.StringFlag{Name: "out", Required: true, Usage: "archive to write (refused if it exists)"},
			&cli.StringFlag{Name: "admin", Usage: "the running node's admin URL (default: http:// and [admin] listen of config.toml)"},
			&cli.BoolFlag{Name: "with-keys", Usage: "add the node key, validator key and HOME/wallet, encrypted with $" +
				wallet.PassphraseEnv + " or a passphrase asked on the terminal"},
		},
		Action: func(c *cli.Context) error {
			home, out := c.String("home"), c.String("out")
			if fileExists(out) {
				return fmt.Errorf("%s exists; refusing to overwrite it", out)
			}
			cfg, err := node.LoadConfig(home)
			if err != nil {
				return err
			}
			var opts node.BackupOptions
			if c.Bool("with-keys") {
				opts.WithKeys = true
				if opts.Passphrase, err = wallet.Passphrase("Passphrase for the backup's keys: ", true); err != nil {
					return err
				}
			}
			admin := c.String("admin")
			if admin == "" && cfg.Admin.Listen != "" {
				admin = "http://" + cfg.Admin.Listen
			}
			var cp node.Checkpoint
			if admin != "" {
				cp, err = node.RequestCheckpoint(c.Context, admin)
				// Nothing listening where config.toml says: the node is stopped; read the stores.
				if err != nil && (c.IsSet("admin") || !errors.Is(err, syscall.ECONNREFUSED)) {
					return err
				}
			}
			if cp.Dir == "" {
				if cp, err = node.CheckpointOffline(home); err != nil {
					return err
				}
			}
			defer os.RemoveAll(cp.Dir)
			tmp := out + ".tmp"
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			defer os.Remove(tmp)
			m, err := node.WriteBackup(f, home, cp, opts)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Rename(tmp, out); err != nil {
				return err
			}
			how := "from the running node"
			if !m.Online {
				how = "from the stopped node's stores"
			}
			keys := "no keys"
			if m.WithKeys {
				keys = "keys encrypted"
			}
			fmt.Fprintf(c.App.Writer, "wrote %s: chain %s at height %d, %s, %s\n", out, m.ChainID, m.Height, how, keys)
			return nil
		},
	}
}

func nodeRestoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "unpack a backup into an empty home",
		Description: "Without --validator-key the backed-up validator key is written as validator_key.json.held and\n" +
			"the home gets a new key in no validator set: the node follows the chain and signs nothing. The node\n" +
			"the backup came from may have signed heights after the backup; signing them again would be a\n" +
			"double sign. Once the restored node is at the chain's tip and the old one is surely stopped, stop\n" +
			"it, move validator_key.json.held over validator_key.json and start it again.",
		Flags: []cli.Flag{
			homeFlag(),
			&cli.StringFlag{Name: "in", Required: true, Usage: "the archive guild node backup wrote"},
			&cli.BoolFlag{Name: "validator-key", Usage: "put the validator key back at once: only when the node the backup came " +
				"from signed nothing after the backup (say, it was stopped when the backup was taken and never started again)"},
		},
		Action: func(c *cli.Context) error {
			f, err := os.Open(c.String("in"))
			if err != nil {
				return err
			}
			defer f.Close()
			home := c.String("home")
			res, err := node.Restore(f, home, node.RestoreOptions{
				ValidatorKey: c.Bool("validator-key"),
				Passphrase: func() (string, error) {
					return wallet.Passphrase("Passphrase of the backup's keys: ", false)
				},
			})
			if err != nil {
				return err
			}
			w := c.App.Writer
			fmt.Fprintf(w, "restored %s: chain %s at height %d (backup of %s, %s)\n", home, res.Manifest.ChainID,
				res.Manifest.Height, res.Manifest.Moniker, res.Manifest.Created.Format("2006-01-02 15:04 UTC"))
			switch {
			case !res.KeysRestored:
				fmt.Fprintf(w, "the backup holds no keys: copy %s and %s into %s before starting\n", node.NodeKeyFile, node.ValidatorKeyFile, home)
			case res.HeldKey != "":
				fmt.Fprintf(w, "the validator key is held in %s; the node follows the chain and signs nothing until you put it back\n", res.HeldKey)
			}
			fmt.Fprintf(w, "start it with: guild node start --home %s\n", home)
			return nil
		},
	}
}
