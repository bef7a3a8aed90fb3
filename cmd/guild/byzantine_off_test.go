//go:build !byzantine

package main

import "testing"

// A release build must not be able to misbehave: `guild node start` has no --byzantine flag.
func TestReleaseBuildHasNoByzantineFlag(t *testing.T) {
	for _, sub := range nodeCommand().Subcommands {
		if sub.Name != "start" {
			continue
		}
		for _, f := range sub.Flags {
			for _, name := range f.Names() {
				if name == "byzantine" {
					t.Fatal("guild node start has --byzantine in a build without -tags byzantine")
				}
			}
		}
		return
	}
	t.Fatal("no node start command")
}
