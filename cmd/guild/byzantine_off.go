//go:build !byzantine

package main

import (
	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
)

// A release build has no --byzantine flag: `guild node start --byzantine ...` fails as an unknown
// flag.
func byzantineFlags() []cli.Flag { return nil }

func applyByzantine(*cli.Context, *node.Node) error { return nil }
