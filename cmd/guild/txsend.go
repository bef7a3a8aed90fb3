package main

// What every command that sends a transaction shares: the flags, building the body against the
// node's chain ID and the sender's nonce, signing (or saving for co-signing with --out), submitting
// and waiting. Query commands share the flags and the printing.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

// txFlags are the flags of a command that sends a transaction, after its own.
func txFlags(own ...cli.Flag) []cli.Flag {
	return append(own,
		&cli.StringFlag{Name: "from", Usage: "`NAME` of the signing key in the wallet", Required: true},
		&cli.StringFlag{Name: "account", Usage: "the sending account, `NAME|ADDRESS`, when it is not the --from key's own (a multi-signature account)"},
		&cli.StringFlag{Name: "out", Usage: "save the transaction, signed by --from only, to `FILE` for others to co-sign (`guild tx sign`) instead of submitting it"},
		&cli.BoolFlag{Name: "wait", Usage: "wait until the transaction is committed or rejected (exit status 1 if rejected)"},
		&cli.DurationFlag{Name: "timeout", Usage: "how long --wait waits", Value: walletSendTimeout},
		nonceFlag(),
		walletDirFlag(), walletNodeFlag(), walletJSONFlag(),
	)
}

// nonceFlag lets a user choose the nonce, e.g. to replace a transaction that was lost.
func nonceFlag() cli.Flag {
	return &cli.Uint64Flag{Name: "nonce", Usage: "sign with nonce `N` instead of the next free one (the larger of the node's next_nonce and the last this wallet signed)"}
}

// reserveNonce picks the nonce to sign with (see wallet.NonceBook) and records it. acct is the
// node's view of the sending account.
func reserveNonce(c *cli.Context, ks *wallet.Keystore, client *api.Client, chainID string, from state.Address, acct api.AccountResponse) (uint64, error) {
	var override *uint64
	if c.IsSet("nonce") {
		v := c.Uint64("nonce")
		override = &v
	}
	// A node that predates next_nonce reports 0 there; its committed nonce is then the floor.
	nodeNext := max(acct.NextNonce, acct.Nonce)
	rejected := func(hash string) bool {
		ts, err := client.Tx(c.Context, hash)
		return err == nil && ts.Status == api.TxRejected
	}
	nonce, _, err := ks.Nonces().Reserve(chainID, from, nodeNext, override, rejected)
	if err != nil {
		return 0, walletFail(err)
	}
	return nonce, nil
}

// refusedTx is the error for a transaction a node refused. A refused transaction took no nonce,
// so the wallet's record gives it back; a nonce refusal also says what to do.
func refusedTx(client *api.Client, book *wallet.NonceBook, tx *state.Tx, refusal *api.Error) error {
	if book != nil {
		_ = book.Release(tx.Body.ChainID, tx.Body.From, tx.Body.Nonce)
	}
	msg := refusal.Message
	if refusal.Code == api.CodeNonceUsed || refusal.Code == api.CodeNonceAhead {
		msg += fmt.Sprintf("; the transaction was signed with nonce %d: `guild account show` gives the account's next_nonce on a node; run the command again without --nonce and the wallet picks the next free one, or pass --nonce N to replace a transaction that was lost", tx.Body.Nonce)
	}
	return walletExit(fmt.Sprintf("node %s refused the transaction: %s", client.Base(), msg), walletExitFailure)
}

// queryFlags are the flags of a command that only reads from a node.
func queryFlags(own ...cli.Flag) []cli.Flag {
	return append(own, walletDirFlag(), walletNodeFlag(), walletJSONFlag())
}

// txEnv is what a command knows before it builds its operation: the node, the chain, the sending
// account and the signing key's entry.
type txEnv struct {
	client  *api.Client
	status  api.StatusResponse
	account api.AccountResponse
	from    state.Address // the sending account
	signer  wallet.Entry  // the --from key
	ks      *wallet.Keystore
}

func (e *txEnv) header(nonce uint64) wallet.Header {
	return wallet.Header{ChainID: e.status.ChainID, From: e.from, Nonce: nonce}
}

// newTxEnv asks the node for the chain ID and the sender's nonce, before any passphrase is typed.
func newTxEnv(c *cli.Context) (*txEnv, error) {
	if c.Duration("timeout") <= 0 {
		return nil, walletExit("--timeout must be positive, e.g. 30s", walletExitBadUsage)
	}
	ks, err := walletOpen(c)
	if err != nil {
		return nil, err
	}
	fromName := c.String("from")
	if _, err := state.ParseAddress(fromName); err == nil {
		return nil, walletFail(errors.New("--from must name a key in the wallet, not an address; see `guild wallet list`"))
	}
	signer, err := ks.Get(fromName)
	if err != nil {
		return nil, walletFail(err)
	}
	env := &txEnv{client: api.NewClient(c.String("node")), signer: signer, from: signer.Address, ks: ks}
	if a := c.String("account"); a != "" {
		if env.from, _, err = walletResolve(c, a); err != nil {
			return nil, err
		}
	}
	if env.status, err = env.client.Status(c.Context); err != nil {
		return nil, walletNodeFail(env.client, err)
	}
	if env.account, err = walletAccount(c.Context, env.client, env.from); err != nil {
		return nil, err
	}
	if s := env.account.Signers; s != nil {
		if !slicesContains(s.Signers, hex.EncodeToString(signer.PubKey)) {
			return nil, walletFail(fmt.Errorf("%s is not a signatory of account %s; its signatories are %s",
				signer.Name, env.from, strings.Join(s.Signers, ", ")))
		}
		if s.Quorum > 1 && c.String("out") == "" {
			return nil, walletFail(fmt.Errorf("account %s needs %d signatures: save the transaction with --out FILE, have other signatories run `guild tx sign FILE --from NAME`, then `guild tx submit FILE`",
				env.from, s.Quorum))
		}
	} else if env.from != signer.Address {
		return nil, walletFail(fmt.Errorf("account %s has no signatories: only its own key signs for it, and --from %s is another key", env.from, signer.Name))
	}
	return env, nil
}

func slicesContains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// txResultJSON is what a command that sends a transaction prints with --json.
type txResultJSON struct {
	Kind    string `json:"kind,omitempty"` // what it creates or acts on: asset, item, ...
	ID      string `json:"id,omitempty"`
	Hash    string `json:"hash,omitempty"`
	ChainID string `json:"chain_id"`
	From    string `json:"from"`
	Nonce   uint64 `json:"nonce"`
	Status  string `json:"status"`
	Height  uint64 `json:"height,omitempty"`
	Error   string `json:"error,omitempty"`
	File    string `json:"file,omitempty"` // with --out
	Signed  int    `json:"signatures,omitempty"`
}

// sendOp builds the body with build, signs it with the --from key, and submits it (or, with
// --out, saves it for co-signing). kind and id name what it creates or acts on, for the output.
func sendOp(c *cli.Context, env *txEnv, kind, id string, build func(h wallet.Header) (state.TxBody, error)) error {
	key, err := loadKey(env.ks, env.signer.Name)
	if err != nil {
		return err
	}
	return sendOpWith(c, env, key, kind, id, build)
}

// sendOpWith is sendOp with the --from key already loaded.
func sendOpWith(c *cli.Context, env *txEnv, key ed25519.PrivateKey, kind, id string, build func(h wallet.Header) (state.TxBody, error)) error {
	nonce, err := reserveNonce(c, env.ks, env.client, env.status.ChainID, env.from, env.account)
	if err != nil {
		return err
	}
	book := env.ks.Nonces()
	body, err := build(env.header(nonce))
	if err != nil {
		_ = book.Release(env.status.ChainID, env.from, nonce)
		return walletFail(err)
	}
	tx, err := wallet.Sign(body, key)
	if err != nil {
		_ = book.Release(env.status.ChainID, env.from, nonce)
		return walletFail(err)
	}
	if _, hash, err := wallet.Encode(tx); err == nil {
		_ = book.Signed(env.status.ChainID, env.from, nonce, hash.String())
	}
	if out := c.String("out"); out != "" {
		if err := wallet.WriteTxFile(out, tx); err != nil {
			return walletFail(err)
		}
		res := txResultJSON{Kind: kind, ID: id, ChainID: body.ChainID, From: body.From.String(), Nonce: body.Nonce,
			Status: "saved", File: out, Signed: len(tx.Sigs)}
		if c.Bool("json") {
			return walletPrintJSON(c, res)
		}
		need := uint32(1)
		if env.account.Signers != nil {
			need = env.account.Signers.Quorum
		}
		fmt.Fprintf(c.App.Writer, "saved %s: %s (nonce %d), signed by %s, 1 of %d signatures needed\n", out, describeOp(&body), body.Nonce, env.signer.Name, need)
		fmt.Fprintf(c.App.ErrWriter, "co-sign with `guild tx sign %s --from NAME`, then send with `guild tx submit %s --wait`\n", out, out)
		return nil
	}
	return submitTx(c, env.client, book, tx, kind, id)
}

// submitTx submits a signed transaction, prints what it is and, with --wait, waits for its fate.
// book, if not nil, is the wallet's nonce record, which gets the nonce back if the node refuses.
func submitTx(c *cli.Context, client *api.Client, book *wallet.NonceBook, tx *state.Tx, kind, id string) error {
	raw, hash, err := wallet.Encode(tx)
	if err != nil {
		return walletFail(err)
	}
	ctx := c.Context
	resp, err := client.SubmitTx(ctx, raw)
	if err != nil {
		var apiErr *api.Error
		if errors.As(err, &apiErr) {
			return refusedTx(client, book, tx, apiErr)
		}
		return walletNodeFail(client, err)
	}
	if resp.Hash != "" && resp.Hash != hash.String() {
		return walletFail(fmt.Errorf("node %s reports hash %s for transaction %s: are the node and this wallet the same version?", client.Base(), resp.Hash, hash))
	}
	out := txResultJSON{Kind: kind, ID: id, Hash: hash.String(), ChainID: tx.Body.ChainID, From: tx.Body.From.String(),
		Nonce: tx.Body.Nonce, Status: walletOr(resp.Status, api.TxPending)}
	if !c.Bool("json") {
		if id != "" {
			fmt.Fprintf(c.App.Writer, "%s %s\n", kind, id)
		}
		fmt.Fprintf(c.App.Writer, "tx %s\n", out.Hash)
	}
	if !c.Bool("wait") {
		if c.Bool("json") {
			return walletPrintJSON(c, out)
		}
		return nil
	}
	ts, fail, err := awaitTx(ctx, c, client, out.Hash, out.Status, "check with `guild tx status "+out.Hash+"`")
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

// awaitTx waits, as --wait asks (up to --timeout), until the node reports hash committed or
// rejected. It returns the node's last status and, for a rejection or a timeout, the error the
// command exits with (hint says what to do after a timeout); err is a failure to ask the node.
func awaitTx(ctx context.Context, c *cli.Context, client *api.Client, hash, status, hint string) (ts api.TxStatus, fail, err error) {
	timeout := c.Duration("timeout")
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ts, werr := client.WaitTx(wctx, hash)
	switch {
	case werr == nil && ts.Status == api.TxCommitted:
	case werr == nil && ts.Status == api.TxRejected:
		fail = walletExit(fmt.Sprintf("transaction %s rejected: %s", hash, walletOr(ts.Error, "no reason given")), walletExitFailure)
	case werr != nil && wctx.Err() != nil && ctx.Err() == nil:
		fail = walletExit(fmt.Sprintf("timed out after %s waiting for transaction %s (status %s); it may still commit: %s",
			timeout, hash, walletOr(ts.Status, walletOr(status, "unknown")), hint), walletExitFailure)
	default:
		return ts, nil, walletNodeFail(client, werr)
	}
	return ts, fail, nil
}

// loadKey asks for name's passphrase ($GUILD_PASSPHRASE or a prompt) and decrypts the key.
func loadKey(ks *wallet.Keystore, name string) (ed25519.PrivateKey, error) {
	pass, err := wallet.Passphrase(fmt.Sprintf("Passphrase for %q: ", name), false)
	if err != nil {
		return nil, walletFail(err)
	}
	key, err := ks.Load(name, pass)
	if err != nil {
		return nil, walletFail(err)
	}
	return key, nil
}

// describeOp is a one-line account of a body's operation, for people about to sign it.
func describeOp(b *state.TxBody) string {
	name, op := wallet.Operation(b)
	j, _ := json.Marshal(op)
	return fmt.Sprintf("%s %s from %s", name, j, b.From)
}

// argID reads the one positional argument, an ID of what the command acts on.
func argID(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", walletExit(fmt.Sprintf("usage: guild %s [flags] %s", c.Command.FullName(), what), walletExitBadUsage)
	}
	id := c.Args().First()
	if err := wallet.CheckID(id); err != nil {
		return "", walletExit(fmt.Sprintf("%s: %v", what, err), walletExitBadUsage)
	}
	return id, nil
}

func noArgs(c *cli.Context) error {
	if c.NArg() != 0 {
		return walletExit(fmt.Sprintf("guild %s takes no arguments, only flags; see `guild %s --help`", c.Command.FullName(), c.Command.FullName()), walletExitBadUsage)
	}
	return nil
}

// hashInput reads a SHA-256 from exactly one of --NAME-hash HEX, --NAME-file FILE (hashed here,
// never sent) and, when text is set, --NAME TEXT (hashed).
func hashInput(c *cli.Context, hashFlag, fileFlag, textFlag string, required bool) (state.Hash, bool, error) {
	set := 0
	for _, f := range []string{hashFlag, fileFlag, textFlag} {
		if f != "" && c.IsSet(f) {
			set++
		}
	}
	names := "--" + hashFlag + " or --" + fileFlag
	if textFlag != "" {
		names += " or --" + textFlag
	}
	switch {
	case set > 1:
		return state.Hash{}, false, walletExit("give only one of "+names, walletExitBadUsage)
	case set == 0 && required:
		return state.Hash{}, false, walletExit("give "+names, walletExitBadUsage)
	case set == 0:
		return state.Hash{}, false, nil
	}
	switch {
	case c.IsSet(hashFlag):
		h, err := state.ParseHash(strings.TrimPrefix(c.String(hashFlag), "0x"))
		if err != nil {
			return h, false, walletExit("--"+hashFlag+": "+err.Error(), walletExitBadUsage)
		}
		return h, true, nil
	case c.IsSet(fileFlag):
		h, err := hashFile(c.String(fileFlag))
		if err != nil {
			return h, false, walletFail(err)
		}
		return h, true, nil
	default:
		return sha256.Sum256([]byte(c.String(textFlag))), true, nil
	}
}

func hashFile(path string) (state.Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return state.Hash{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return state.Hash{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	return state.Hash(h.Sum(nil)), nil
}

// resolvePubKey reads a public key: 64 hex characters, or the name of a key in the wallet.
func resolvePubKey(c *cli.Context, s string) ([]byte, error) {
	if b, err := hex.DecodeString(strings.TrimPrefix(s, "0x")); err == nil && len(b) == ed25519.PublicKeySize {
		return b, nil
	}
	ks, err := walletOpen(c)
	if err != nil {
		return nil, err
	}
	e, err := ks.Get(s)
	if err != nil {
		return nil, walletFail(fmt.Errorf("%q is neither a 64-hex-character public key nor a key in the wallet: %w", s, err))
	}
	return bytes.Clone(e.PubKey), nil
}

// heightInput reads a block height from --ABS H or --REL N (N blocks after the current height).
func heightInput(c *cli.Context, env *txEnv, abs, rel string) (uint64, error) {
	switch {
	case c.IsSet(abs) && c.IsSet(rel):
		return 0, walletExit("give only one of --"+abs+" and --"+rel, walletExitBadUsage)
	case c.IsSet(abs):
		return c.Uint64(abs), nil
	case c.IsSet(rel):
		return env.status.Height + c.Uint64(rel), nil
	}
	return 0, walletExit("give --"+abs+" HEIGHT or --"+rel+" BLOCKS (after the current height)", walletExitBadUsage)
}

// query runs a read against the node: 404 is "no such KIND", anything else the node's reason.
func query[T any](c *cli.Context, kind, id string, get func(ctx context.Context, cl *api.Client) (T, error)) (T, error) {
	client := api.NewClient(c.String("node"))
	v, err := get(c.Context, client)
	if errors.Is(err, api.ErrNotFound) {
		return v, walletExit(fmt.Sprintf("no %s %s on node %s", kind, id, client.Base()), walletExitFailure)
	}
	if err != nil {
		return v, walletNodeFail(client, err)
	}
	return v, nil
}

// showByID is the action of a `guild KIND show ID` command: read the record by ID from the node
// and print it.
func showByID[T any](kind string, get func(*api.Client, context.Context, string) (T, error)) cli.ActionFunc {
	return func(c *cli.Context) error {
		id, err := argID(c, "ID")
		if err != nil {
			return err
		}
		v, err := query(c, kind, id, func(ctx context.Context, cl *api.Client) (T, error) { return get(cl, ctx, id) })
		if err != nil {
			return err
		}
		return printRecord(c, v)
	}
}

// printRecord prints v as indented JSON with --json, and otherwise as "key: value" lines with
// the same keys in the same order, nested records indented and list items marked "- ".
func printRecord(c *cli.Context, v any) error {
	if c.Bool("json") {
		return walletPrintJSON(c, v)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tree, err := readOrdered(dec)
	if err != nil {
		return err
	}
	var sb strings.Builder
	writePlain(&sb, tree, "", "")
	_, err = io.WriteString(c.App.Writer, sb.String())
	return err
}

// orderedObject is a JSON object with its keys in their order.
type orderedObject struct {
	keys []string
	vals []any
}

// readOrdered reads the next JSON value: an *orderedObject, []any, or a scalar token.
func readOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &orderedObject{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := readOrdered(dec)
			if err != nil {
				return nil, err
			}
			o.keys, o.vals = append(o.keys, fmt.Sprint(k)), append(o.vals, v)
		}
		_, err := dec.Token()
		return o, err
	case json.Delim('['):
		a := []any{}
		for dec.More() {
			v, err := readOrdered(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return tok, nil
}

// whenMs reads a "..._ms" field that holds a unix time in milliseconds as a date, for people.
func whenMs(key string, v any) string {
	n, ok := v.(json.Number)
	if !ok || !strings.HasSuffix(key, "time_ms") && !strings.HasSuffix(key, "expires_ms") {
		return ""
	}
	ms, err := n.Int64()
	if err != nil || ms <= 0 {
		return ""
	}
	return " (" + time.UnixMilli(ms).UTC().Format(time.RFC3339) + ")"
}

func scalarText(v any) string {
	switch t := v.(type) {
	case nil:
		return "-"
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	}
	return fmt.Sprint(v)
}

// writePlain prints an object's fields: first is the indent of its first line (where a list
// item's "- " goes), rest the indent of the others.
func writePlain(w *strings.Builder, v any, first, rest string) {
	o, ok := v.(*orderedObject)
	if !ok {
		w.WriteString(first + scalarText(v) + "\n")
		return
	}
	for i, k := range o.keys {
		ind := rest
		if i == 0 {
			ind = first
		}
		switch x := o.vals[i].(type) {
		case *orderedObject:
			w.WriteString(ind + k + ":\n")
			writePlain(w, x, rest+"  ", rest+"  ")
		case []any:
			objects := len(x) > 0
			for _, e := range x {
				if _, isObj := e.(*orderedObject); !isObj {
					objects = false
				}
			}
			if !objects {
				vals := make([]string, len(x))
				for j, e := range x {
					vals[j] = scalarText(e)
				}
				w.WriteString(ind + k + ": [" + strings.Join(vals, ", ") + "]\n")
				continue
			}
			w.WriteString(ind + k + ":\n")
			for _, e := range x {
				writePlain(w, e, rest+"  - ", rest+"    ")
			}
		default:
			w.WriteString(ind + k + ": " + scalarText(x) + whenMs(k, x) + "\n")
		}
	}
}
