package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/state"
)

// buildInfo is what `guild version` prints: the release (from -ldflags), the commit the binary was
// built from and the Go toolchain, both read from the binary's own build information.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"` // "unknown" when built outside a git checkout (go test, go run)
	Modified  bool   `json:"modified,omitempty"`
	CommitAt  string `json:"commit_time,omitempty"`
	GoVersion string `json:"go_version"`
	// Protocol is the newest protocol version the binary supports (it supports 1..Protocol): what
	// an operator checks before a governance upgrade (docs/operations.md, "Rolling upgrades").
	Protocol uint32 `json:"protocol_version"`
}

// commit is set by `make build` (-ldflags "-X main.commit=…"), for builds where Go records no VCS
// information (-buildvcs=false, a git worktree Go cannot read).
var commit = ""

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: "unknown", GoVersion: "unknown", Protocol: state.SupportedVersion}
	if commit != "" {
		b.Commit = commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.GoVersion = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		case "vcs.time":
			b.CommitAt = s.Value
		}
	}
	return b
}

func (b buildInfo) String() string {
	commit := b.Commit
	if b.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("%s\ncommit: %s\ngo:     %s\nprotocol versions: 1..%d", b.Version, commit, b.GoVersion, b.Protocol)
}

// versionString is what --version prints after "guild version ".
func versionString() string { return readBuildInfo().String() }

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, the commit it was built from and the Go version",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print as JSON"}},
		Action: func(c *cli.Context) error {
			b := readBuildInfo()
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(b)
			}
			_, err := fmt.Fprintf(c.App.Writer, "guild %s\n", b)
			return err
		},
	}
}
