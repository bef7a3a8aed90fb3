package main

import (
	_ "embed"
	"fmt"

	"github.com/urfave/cli/v2"
)

// The bash and zsh scripts are urfave/cli's documented autocomplete scripts with the program name
// filled in: they call guild with --generate-bash-completion, so they follow the commands as they
// change. Fish gets a static script generated from the command tree.
var (
	//go:embed completion/guild.bash
	bashCompletion string
	//go:embed completion/guild.zsh
	zshCompletion string
)

func completionCommand(app *cli.App) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: guild completion bash|zsh|fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "bash: source <(guild completion bash)\n" +
			"zsh:  guild completion zsh > \"${fpath[1]}/_guild\"\n" +
			"fish: guild completion fish > ~/.config/fish/completions/guild.fish",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return &usageError{cmd: "guild completion", err: fmt.Errorf("want one shell: bash, zsh or fish")}
			}
			var script string
			switch c.Args().First() {
			case "bash":
				script = bashCompletion
			case "zsh":
				script = zshCompletion
			case "fish":
				s, err := app.ToFishCompletion()
				if err != nil {
					return err
				}
				script = s
			default:
				return &usageError{cmd: "guild completion", err: fmt.Errorf("shell %q: want bash, zsh or fish", c.Args().First())}
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}
