//go:build byzantine

package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
)

// A test build (-tags byzantine) adds `guild node start --byzantine MODE`.
func byzantineFlags() []cli.Flag {
	return []cli.Flag{&cli.StringFlag{Name: "byzantine", Usage: "`MODE`: misbehave on purpose, for tests: " +
		strings.Join(node.ByzantineModes, ", ")}}
}

func applyByzantine(c *cli.Context, n *node.Node) error {
	if mode := c.String("byzantine"); mode != "" {
		return n.SetByzantine(mode)
	}
	return nil
}
