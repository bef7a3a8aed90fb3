package wallet

import (
	"errors"
	"fmt"
	"os"
)

// PassphraseEnv names the environment variable that, when set, supplies the passphrase instead
// of a terminal prompt (for scripts and tests).
const PassphraseEnv = "GUILD_PASSPHRASE"

// DefaultTestnetPassphrase encrypts the keys that `guild testnet up` makes when GUILD_PASSPHRASE
// is unset. Testnet keys guard nothing of value; never use it for a real key.
const DefaultTestnetPassphrase = "guild-testnet"

// ErrNoTerminal: no $GUILD_PASSPHRASE and no terminal to prompt on (a script, a service).
var ErrNoTerminal = fmt.Errorf("wallet: no terminal to read a passphrase from; set %s", PassphraseEnv)

// Passphrase returns $GUILD_PASSPHRASE if it is set and not empty. Otherwise it prints prompt on
// the controlling terminal and reads a line with echo off; with confirm it asks a second time and
// requires the two to match (for a new key). Without a terminal and without the variable it fails.
// The prompt goes to the terminal, never to stdout, so machine-readable output stays clean.
func Passphrase(prompt string, confirm bool) (string, error) {
	if p := os.Getenv(PassphraseEnv); p != "" {
		return p, nil
	}
	tty, err := openTerminal()
	if err != nil {
		return "", err
	}
	defer tty.close()
	p, err := tty.readHidden(prompt)
	if err != nil {
		return "", err
	}
	if p == "" {
		return "", ErrEmptyPassphrase
	}
	if confirm {
		again, err := tty.readHidden("Repeat passphrase: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", errors.New("wallet: passphrases do not match; try again")
		}
	}
	return p, nil
}
