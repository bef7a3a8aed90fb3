//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package wallet

// terminal is unsupported here: passphrases come from GUILD_PASSPHRASE only.
type terminal struct{}

func openTerminal() (*terminal, error)                       { return nil, ErrNoTerminal }
func (t *terminal) close()                                   {}
func (t *terminal) readHidden(prompt string) (string, error) { return "", ErrNoTerminal }
