// Command guild is Guild's single binary: the node, the wallet and the testnet launcher.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	app := newApp()
	if err := app.Run(flagsFirst(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "guild:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "guild",
		Usage:   "a Byzantine-fault-tolerant ledger for consortiums",
		Version: version,
		Commands: []*cli.Command{
			nodeCommand(),
			walletCommand(),
			testnetCommand(),
			accountCommand(),
			assetCommand(),
			itemCommand(),
			identityCommand(),
			claimCommand(),
			notaryCommand(),
			escrowCommand(),
			ballotCommand(),
			govCommand(),
			txCommand(),
			watchCommand(),
		},
		EnableBashCompletion: true,
	}
}
