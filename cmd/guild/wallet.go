package main

// `guild wallet …`: keys in an encrypted keystore, balances and transfers through a node's API.
//
// Output: human-readable by default; with --json, one JSON value on stdout with lower-case keys.
// Prompts go to the terminal and notes to stderr, so stdout is only the answer. Every failure is
// one line on stderr saying what to do, with exit status 1 (2 for a wrong number of arguments).

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

const (
	walletDirEnv       = "GUILD_WALLET"
	walletNodeEnv      = "GUILD_NODE"
	walletDefaultNode  = "http://127.0.0.1:8645"
	walletSendTimeout  = 30 * time.Second
	walletExitFailure  = 1
	walletExitBadUsage = 2
)

func walletCommand() *cli.Command {
	return &cli.Command{
		Name:  "wallet",
		Usage: "manage encrypted account keys, query balances and send transfers",
		Description: "Keys live in a keystore directory (--wallet, $" + walletDirEnv + ", default ~/.guild/wallet),\n" +
			"one age-encrypted file per key. Commands that need a passphrase read $" + wallet.PassphraseEnv + "\n" +
			"if it is set, and otherwise prompt on the terminal.",
		Subcommands: []*cli.Command{
			walletNewCommand(),
			walletListCommand(),
			walletAddressCommand(),
			walletBalanceCommand(),
			walletSendCommand(),
		},
	}
}

func walletDirFlag() cli.Flag {
	def := ""
	if home, err := os.UserHomeDir(); err == nil {
		def = filepath.Join(home, ".guild", "wallet")
	}
	return &cli.StringFlag{
		Name:    "wallet",
		Usage:   "keystore `DIR`",
		EnvVars: []string{walletDirEnv},
		Value:   def,
	}
}

func walletNodeFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "node",
		Usage:   "`URL` of a node's HTTP API",
		EnvVars: []string{walletNodeEnv},
		Value:   walletDefaultNode,
	}
}

func walletJSONFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON"}
}

func walletNewCommand() *cli.Command {
	return &cli.Command{
		Name:      "new",
		Usage:     "create a new key, encrypted under a passphrase",
		ArgsUsage: "NAME",
		Flags:     []cli.Flag{walletDirFlag(), walletJSONFlag()},
		Action: func(c *cli.Context) error {
			name, err := walletOneArg(c, "NAME")
			if err != nil {
				return err
			}
			ks, err := walletOpen(c)
			if err != nil {
				return err
			}
			if err := wallet.CheckName(name); err != nil {
				return walletFail(err)
			}
			// Refuse before asking for a passphrase twice.
			if _, err := ks.Get(name); err == nil {
				return walletFail(fmt.Errorf("%w: %q in %s", wallet.ErrKeyExists, name, ks.Dir))
			}
			pass, err := wallet.Passphrase(fmt.Sprintf("Passphrase for new key %q: ", name), true)
			if err != nil {
				return walletFail(err)
			}
			e, err := ks.Create(name, pass)
			if err != nil {
				return walletFail(err)
			}
			fmt.Fprintf(c.App.ErrWriter, "saved %s (encrypted; a lost passphrase cannot be recovered, so keep it and a backup of the file)\n",
				filepath.Join(ks.Dir, name+".json"))
			if c.Bool("json") {
				return walletPrintJSON(c, walletEntryJSON(e))
			}
			fmt.Fprintf(c.App.Writer, "name:    %s\naddress: %s\n", e.Name, e.Address)
			return nil
		},
	}
}

func walletListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the keys in the keystore with their addresses",
		Flags: []cli.Flag{walletDirFlag(), walletJSONFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return walletUsage(c)
			}
			ks, err := walletOpen(c)
			if err != nil {
				return err
			}
			entries, err := ks.List()
			if err != nil {
				return walletFail(err)
			}
			if c.Bool("json") {
				out := make([]walletKeyJSON, 0, len(entries))
				for _, e := range entries {
					out = append(out, walletEntryJSON(e))
				}
				return walletPrintJSON(c, out)
			}
			if len(entries) == 0 {
				fmt.Fprintf(c.App.ErrWriter, "no keys in %s; create one with `guild wallet new NAME`\n", ks.Dir)
				return nil
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tADDRESS")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s\t%s\n", e.Name, e.Address)
			}
			return tw.Flush()
		},
	}
}

func walletAddressCommand() *cli.Command {
	return &cli.Command{
		Name:      "address",
		Usage:     "print the address of a key",
		ArgsUsage: "NAME",
		Flags:     []cli.Flag{walletDirFlag(), walletJSONFlag()},
		Action: func(c *cli.Context) error {
			name, err := walletOneArg(c, "NAME")
			if err != nil {
				return err
			}
			ks, err := walletOpen(c)
			if err != nil {
				return err
			}
			e, err := ks.Get(name)
			if err != nil {
				return walletFail(err)
			}
			if c.Bool("json") {
				return walletPrintJSON(c, walletEntryJSON(e))
			}
			fmt.Fprintln(c.App.Writer, e.Address)
			return nil
		},
	}
}

type walletBalanceJSON struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
	Balance uint64 `json:"balance"`
	Nonce   uint64 `json:"nonce"`
	// NextNonce is the node's next_nonce: the committed nonce plus its pending transactions.
	NextNonce uint64 `json:"next_nonce"`
}

func walletBalanceCommand() *cli.Command {
	return &cli.Command{
		Name:      "balance",
		Usage:     "query a node for an account's balance and nonce",
		ArgsUsage: "NAME|ADDRESS",
		Flags:     []cli.Flag{walletDirFlag(), walletNodeFlag(), walletJSONFlag()},
		Action: func(c *cli.Context) error {
			arg, err := walletOneArg(c, "NAME|ADDRESS")
			if err != nil {
				return err
			}
			addr, name, err := walletResolve(c, arg)
			if err != nil {
				return err
			}
			client := api.NewClient(c.String("node"))
			acct, err := walletAccount(c.Context, client, addr)
			if err != nil {
				return err
			}
			out := walletBalanceJSON{Name: name, Address: addr.String(), Balance: acct.Balance, Nonce: acct.Nonce, NextNonce: max(acct.NextNonce, acct.Nonce)}
			if c.Bool("json") {
				return walletPrintJSON(c, out)
			}
			if name != "" {
				fmt.Fprintf(c.App.Writer, "name:    %s\n", name)
			}
			fmt.Fprintf(c.App.Writer, "address: %s\nbalance: %d\nnonce:   %d (next %d)\n", out.Address, out.Balance, out.Nonce, out.NextNonce)
			return nil
		},
	}
}

type walletSendJSON struct {
	Hash    string `json:"hash"`
	ChainID string `json:"chain_id"`
	From    string `json:"from"`
	To      string `json:"to"`
	Amount  uint64 `json:"amount"`
	Nonce   uint64 `json:"nonce"`
	Status  string `json:"status"`
	Height  uint64 `json:"height,omitempty"`
	Error   string `json:"error,omitempty"`
}

func walletSendCommand() *cli.Command {
	return &cli.Command{
		Name:  "send",
		Usage: "sign a transfer with a key and submit it to a node",
		UsageText: "guild wallet send --from NAME --to NAME|ADDRESS --amount N [--wait [--timeout 30s]]\n\n" +
			"Prints the transaction hash. With --wait, also waits until the transaction is committed\n" +
			"(prints its height) or rejected (prints why, exit status 1); a timeout is exit status 1 too.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Usage: "`NAME` of the sending key", Required: true},
			&cli.StringFlag{Name: "to", Usage: "recipient: a key name or an address, `NAME|ADDRESS`", Required: true},
			&cli.Uint64Flag{Name: "amount", Usage: "amount to send, `N` > 0", Required: true},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the transaction is committed or rejected"},
			&cli.DurationFlag{Name: "timeout", Usage: "how long --wait waits", Value: walletSendTimeout},
			nonceFlag(),
			walletDirFlag(), walletNodeFlag(), walletJSONFlag(),
		},
		Action: walletSend,
	}
}

func walletSend(c *cli.Context) error {
	if c.NArg() != 0 {
		return walletUsage(c)
	}
	amount := c.Uint64("amount")
	if amount == 0 {
		return walletExit("--amount must be greater than 0", walletExitBadUsage)
	}
	if c.Duration("timeout") <= 0 {
		return walletExit("--timeout must be positive, e.g. 30s", walletExitBadUsage)
	}
	ks, err := walletOpen(c)
	if err != nil {
		return err
	}
	fromName := c.String("from")
	if _, err := state.ParseAddress(fromName); err == nil {
		return walletFail(errors.New("--from must name a key in the wallet, not an address; see `guild wallet list`"))
	}
	from, err := ks.Get(fromName)
	if err != nil {
		return walletFail(err)
	}
	to, _, err := walletResolve(c, c.String("to"))
	if err != nil {
		return err
	}
	if to == from.Address {
		return walletFail(fmt.Errorf("--to is %s's own address; a transfer to self is not allowed", from.Name))
	}

	// Ask the node first, so a passphrase is never typed for a transfer that cannot go out.
	ctx := c.Context
	client := api.NewClient(c.String("node"))
	st, err := client.Status(ctx)
	if err != nil {
		return walletNodeFail(client, err)
	}
	acct, err := walletAccount(ctx, client, from.Address)
	if err != nil {
		return err
	}
	if acct.Balance < amount {
		return walletFail(fmt.Errorf("insufficient funds: %s (%s) has %d, cannot send %d", from.Name, from.Address, acct.Balance, amount))
	}

	pass, err := wallet.Passphrase(fmt.Sprintf("Passphrase for %q: ", from.Name), false)
	if err != nil {
		return walletFail(err)
	}
	key, err := ks.Load(from.Name, pass)
	if err != nil {
		return walletFail(err)
	}
	nonce, err := reserveNonce(c, ks, client, st.ChainID, from.Address, acct)
	if err != nil {
		return err
	}
	raw, hash, err := wallet.NewTransfer(st.ChainID, key, to, amount, nonce)
	if err != nil {
		_ = ks.Nonces().Release(st.ChainID, from.Address, nonce)
		return walletFail(err)
	}
	_ = ks.Nonces().Signed(st.ChainID, from.Address, nonce, hash.String())
	resp, err := client.SubmitTx(ctx, raw)
	if err != nil {
		var apiErr *api.Error
		if errors.As(err, &apiErr) {
			tx := &state.Tx{Body: state.TxBody{ChainID: st.ChainID, From: from.Address, Nonce: nonce}}
			return refusedTx(client, ks.Nonces(), tx, apiErr)
		}
		return walletNodeFail(client, err)
	}
	if resp.Hash != "" && resp.Hash != hash.String() {
		return walletFail(fmt.Errorf("node %s reports hash %s for transaction %s: the node and this wallet disagree on encoding; are they the same version?", client.Base(), resp.Hash, hash))
	}
	out := walletSendJSON{
		Hash: hash.String(), ChainID: st.ChainID, From: from.Address.String(), To: to.String(),
		Amount: amount, Nonce: nonce, Status: api.TxPending,
	}
	if resp.Status != "" {
		out.Status = resp.Status
	}
	if !c.Bool("json") {
		fmt.Fprintln(c.App.Writer, out.Hash)
	}
	if !c.Bool("wait") {
		if c.Bool("json") {
			return walletPrintJSON(c, out)
		}
		return nil
	}
	ts, fail, err := awaitTx(ctx, c, client, out.Hash, out.Status, "check `guild wallet balance`, or wait longer with --timeout")
	if err != nil {
		return err
	}
	out.Status, out.Height, out.Error = walletOr(ts.Status, out.Status), ts.Height, ts.Error
	if c.Bool("json") {
		if err := walletPrintJSON(c, out); err != nil {
			return err
		}
	} else if fail == nil {
		fmt.Fprintf(c.App.Writer, "committed at height %d\n", out.Height)
	}
	return fail
}

// walletResolve reads a NAME|ADDRESS argument: an address as is, or the address of the key so
// named. Key names can never be valid addresses (wallet.CheckName), so the two never collide.
func walletResolve(c *cli.Context, s string) (addr state.Address, name string, err error) {
	addr, perr := state.ParseAddress(s)
	if perr == nil {
		return addr, "", nil
	}
	if wallet.CheckName(s) == nil {
		ks, err := walletOpen(c)
		if err != nil {
			return state.Address{}, "", err
		}
		e, err := ks.Get(s)
		if err == nil {
			return e.Address, e.Name, nil
		}
		if !errors.Is(err, wallet.ErrKeyNotFound) {
			return state.Address{}, "", walletFail(err)
		}
	}
	if walletLooksLikeAddress(s) {
		return state.Address{}, "", walletFail(fmt.Errorf("%q is not a valid address: %w; copy it again from `guild wallet address` or `guild wallet list`", s, perr))
	}
	return state.Address{}, "", walletFail(fmt.Errorf("%q is neither a key in %s nor an address; see `guild wallet list`", s, c.String("wallet")))
}

// walletLooksLikeAddress tells an attempted (mistyped) address from a key name that merely
// starts with "guild": the prefix followed by nothing but hex digits.
func walletLooksLikeAddress(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	body, ok := strings.CutPrefix(s, state.AddressPrefix)
	if !ok || len(body) < 16 {
		return false
	}
	_, err := hex.DecodeString(body[:len(body)&^1])
	return err == nil
}

// walletAccount reads an account; one the node has never seen is empty (balance and nonce 0).
func walletAccount(ctx context.Context, client *api.Client, addr state.Address) (api.AccountResponse, error) {
	acct, err := client.Account(ctx, addr.String())
	if errors.Is(err, api.ErrNotFound) {
		return api.AccountResponse{Address: addr.String()}, nil
	}
	if err != nil {
		return acct, walletNodeFail(client, err)
	}
	return acct, nil
}

func walletOpen(c *cli.Context) (*wallet.Keystore, error) {
	dir := c.String("wallet")
	if dir == "" {
		return nil, walletFail(fmt.Errorf("no keystore directory: set --wallet DIR or $%s", walletDirEnv))
	}
	ks, err := wallet.Open(dir)
	if err != nil {
		return nil, walletFail(fmt.Errorf("%w; choose another with --wallet DIR or $%s", err, walletDirEnv))
	}
	return ks, nil
}

func walletOneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", walletExit(fmt.Sprintf("usage: guild wallet %s [flags] %s", c.Command.Name, what), walletExitBadUsage)
	}
	return c.Args().First(), nil
}

// walletExit prints msg like main prints errors ("guild: …") and exits with code.
func walletExit(msg string, code int) error { return cli.Exit("guild: "+msg, code) }

func walletUsage(c *cli.Context) error {
	return walletExit(fmt.Sprintf("guild wallet %s takes no arguments, only flags; see `guild wallet %s --help`", c.Command.Name, c.Command.Name), walletExitBadUsage)
}

// walletFail turns err into a one-line message and exit status 1, with a hint for the errors a
// user can do something about.
func walletFail(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, wallet.ErrKeyNotFound):
		msg += "; see `guild wallet list`, or create it with `guild wallet new NAME`"
	case errors.Is(err, wallet.ErrKeyExists):
		msg += "; keys are never overwritten, choose another name"
	case errors.Is(err, wallet.ErrBadPassphrase):
		msg += "; try again" + walletIf(os.Getenv(wallet.PassphraseEnv) != "", " (the passphrase came from $"+wallet.PassphraseEnv+")")
	case errors.Is(err, wallet.ErrEmptyPassphrase):
		msg += "; a key needs a passphrase"
	case errors.Is(err, wallet.ErrCorruptKey):
		msg += "; restore the key file from a backup"
	}
	return walletExit(msg, walletExitFailure)
}

// walletNodeFail explains a failed API call: the node answered with an error, or could not be
// reached at all.
func walletNodeFail(client *api.Client, err error) error {
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return walletExit(fmt.Sprintf("node %s: %s", client.Base(), apiErr.Message), walletExitFailure)
	}
	return walletExit(fmt.Sprintf("cannot reach node %s (%v); start one with `guild testnet up`, or point --node or $%s at a running node",
		client.Base(), err, walletNodeEnv), walletExitFailure)
}

type walletKeyJSON struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	PublicKey string `json:"public_key"`
}

func walletEntryJSON(e wallet.Entry) walletKeyJSON {
	return walletKeyJSON{Name: e.Name, Address: e.Address.String(), PublicKey: hex.EncodeToString(e.PubKey)}
}

func walletPrintJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func walletOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func walletIf(cond bool, s string) string {
	if cond {
		return s
	}
	return ""
}
