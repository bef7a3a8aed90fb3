package main

import (
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	app := &cli.App{Commands: []*cli.Command{nodeCommand(), walletCommand(), testnetCommand()}}
	for _, tt := range []struct{ in, want []string }{
		{ // a value flag after the name moves before it, with its value
			[]string{"guild", "wallet", "balance", "alice", "--node", "http://x", "--json"},
			[]string{"guild", "wallet", "balance", "--node", "http://x", "--json", "--", "alice"},
		},
		{ // already in order: only the separator is added
			[]string{"guild", "wallet", "new", "--wallet", "w", "bob"},
			[]string{"guild", "wallet", "new", "--wallet", "w", "--", "bob"},
		},
		{ // --flag=value stays one argument
			[]string{"guild", "wallet", "address", "bob", "--wallet=w"},
			[]string{"guild", "wallet", "address", "--wallet=w", "--", "bob"},
		},
		{ // not a leaf command: unchanged
			[]string{"guild", "wallet", "--help"},
			[]string{"guild", "wallet", "--help"},
		},
		{ // no positional arguments: unchanged
			[]string{"guild", "testnet", "status", "--dir", "d"},
			[]string{"guild", "testnet", "status", "--dir", "d"},
		},
	} {
		if got := flagsFirst(app, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
