package main

// `guild private …`: payloads only named members read (issue 14). The wallet encrypts with age to
// the recipients' registered keys and decrypts; the chain keeps the commitment (SHA-256 of the
// ciphertext), the recipients and an optional expiry; the nodes of the sender's and recipients'
// members keep the ciphertext, and nobody else ever receives it.

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

func privateCommand() *cli.Command {
	return &cli.Command{
		Name:  "private",
		Usage: "private payloads between named members: key, send, get, list, show, verify, escrow, claim",
		Subcommands: []*cli.Command{
			privateKeyCommand(),
			{
				Name: "send", Usage: "encrypt a file to members' keys; the chain records only its commitment",
				Flags: txFlags(
					&cli.StringFlag{Name: "to", Usage: "recipient members, `NAME[,NAME...]`", Required: true},
					&cli.StringFlag{Name: "file", Usage: "the `FILE` to send (encrypted here)", Required: true},
					&cli.Uint64Flag{Name: "expires-in", Usage: "nodes purge the ciphertext `N` blocks after the current height (default: never)"},
				),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					p, ct, err := sealFile(c, env, c.String("file"), splitNames(c.String("to")))
					if err != nil {
						return err
					}
					return sendPrivate(c, env, "private payload", ct, func(h wallet.Header) (state.TxBody, error) {
						return wallet.PrivateSend(h, p)
					})
				},
			},
			{
				Name: "get", Usage: "read a payload through your member's node and decrypt it", ArgsUsage: "COMMITMENT",
				Flags: queryFlags(
					&cli.StringFlag{Name: "from", Usage: "`NAME` of the wallet key that controls a recipient member's account (its encryption key decrypts)", Required: true},
					&cli.StringFlag{Name: "out", Usage: "write the plaintext to `FILE` (\"-\": standard output)", Required: true},
					&cli.StringFlag{Name: "ciphertext-out", Usage: "also save the ciphertext to `FILE`, e.g. to disclose it later"},
				),
				Action: privateGet,
			},
			{
				Name: "list", Usage: "the public part of the private payloads (what the chain shows everyone)",
				Flags: queryFlags(&cli.StringFlag{Name: "member", Usage: "only those member `NAME` sends or receives"}),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					v, err := query(c, "private payloads", "", func(ctx context.Context, cl *api.Client) (api.PrivateListResponse, error) {
						return cl.PrivateList(ctx, c.String("member"))
					})
					if err != nil {
						return err
					}
					return printRecord(c, v)
				},
			},
			{
				Name: "show", Usage: "the public part of one payload", ArgsUsage: "COMMITMENT",
				Flags: queryFlags(),
				Action: func(c *cli.Context) error {
					h, err := commitmentArg(c)
					if err != nil {
						return err
					}
					v, err := query(c, "private payload", h.String(), func(ctx context.Context, cl *api.Client) (api.PrivateRecord, error) {
						return cl.PrivateRecord(ctx, h.String())
					})
					if err != nil {
						return err
					}
					return printRecord(c, v)
				},
			},
			{
				Name:      "verify",
				Usage:     "check that a disclosed ciphertext is the one committed on chain (exit status 1 if not)",
				ArgsUsage: "[COMMITMENT]",
				Flags:     queryFlags(&cli.StringFlag{Name: "file", Usage: "the disclosed ciphertext `FILE`", Required: true}),
				Action:    privateVerify,
			},
			privateEscrowCommand(),
			privateClaimCommand(),
		},
	}
}

func privateKeyCommand() *cli.Command {
	return &cli.Command{
		Name:  "key",
		Usage: "encryption keys: set (register or rotate), show",
		Subcommands: []*cli.Command{
			{
				Name:  "set",
				Usage: "register the --from key's encryption key for its member (or --identity); --rotate makes a new one",
				Flags: txFlags(
					&cli.StringFlag{Name: "member", Usage: "the member `NAME` (default: the --from account's member)"},
					&cli.StringFlag{Name: "identity", Usage: "an identity `ID` the --from account controls, instead of a member"},
					&cli.BoolFlag{Name: "rotate", Usage: "make a new key even if the wallet has one (old payloads stay readable)"},
				),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					op := state.EncryptionKeySet{Member: c.String("member"), Identity: c.String("identity")}
					if op.Member == "" && op.Identity == "" {
						if op.Member = env.account.Member; op.Member == "" {
							return walletExit(fmt.Sprintf("account %s is no member's: name --member or --identity", env.from), walletExitBadUsage)
						}
					}
					name := env.signer.Name
					rs, err := env.ks.EncryptionRecipients(name)
					if err != nil {
						return walletFail(err)
					}
					key, err := loadKey(env.ks, name)
					if err != nil {
						return err
					}
					if len(rs) == 0 || c.Bool("rotate") {
						if op.Key, err = env.ks.NewEncryptionKey(name, key); err != nil {
							return walletFail(err)
						}
					} else {
						op.Key = rs[len(rs)-1]
					}
					if !c.Bool("json") {
						fmt.Fprintf(c.App.Writer, "encryption key %s\n", op.Key)
					}
					owner := state.EncKeyMember + op.Member
					if op.Identity != "" {
						owner = state.EncKeyIdentity + op.Identity
					}
					return sendOpWith(c, env, key, "encryption key of", owner, func(h wallet.Header) (state.TxBody, error) {
						return wallet.EncryptionKeySet(h, op)
					})
				},
			},
			{
				Name: "show", Usage: "a member's or identity's registered encryption key", ArgsUsage: "member:NAME|identity:ID",
				Flags: queryFlags(),
				Action: func(c *cli.Context) error {
					owner, err := walletOneArg(c, "member:NAME or identity:ID")
					if err != nil {
						return err
					}
					v, err := query(c, "encryption key of", owner, func(ctx context.Context, cl *api.Client) (api.EncryptionKey, error) {
						return cl.EncryptionKey(ctx, owner)
					})
					if err != nil {
						return err
					}
					return printRecord(c, v)
				},
			},
		},
	}
}

func splitNames(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" && !slicesContains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// sealFile encrypts file to the registered keys of the recipient members and of the sender's own
// member (so that it can read it back), and returns the payload's public part and ciphertext.
func sealFile(c *cli.Context, env *txEnv, file string, to []string) (state.PrivateSend, []byte, error) {
	if len(to) == 0 {
		return state.PrivateSend{}, nil, walletExit("name at least one recipient member", walletExitBadUsage)
	}
	plain, err := os.ReadFile(file)
	if err != nil {
		return state.PrivateSend{}, nil, walletFail(err)
	}
	var keys []string
	for _, m := range append(to, env.account.Member) {
		if m == "" {
			continue
		}
		k, err := env.client.EncryptionKey(c.Context, state.EncKeyMember+m)
		switch {
		case errors.Is(err, api.ErrNotFound) && m == env.account.Member && !slicesContains(to, m):
			continue // the sender's member has no key: it will hold a copy it cannot read
		case errors.Is(err, api.ErrNotFound):
			return state.PrivateSend{}, nil, walletFail(fmt.Errorf("member %q has no encryption key on chain (it registers one with `guild private key set`), or is no member", m))
		case err != nil:
			return state.PrivateSend{}, nil, walletNodeFail(env.client, err)
		}
		keys = append(keys, k.Key)
	}
	ct, commitment, err := wallet.Seal(plain, keys)
	if err != nil {
		return state.PrivateSend{}, nil, walletFail(err)
	}
	p := state.PrivateSend{Commitment: commitment, Recipients: to, Size: uint64(len(ct))}
	if n := c.Uint64("expires-in"); n > 0 {
		p.Expires = env.status.Height + n
	}
	return p, ct, nil
}

// sendPrivate signs the body build makes and submits it with its ciphertext to the node.
func sendPrivate(c *cli.Context, env *txEnv, kind string, ct []byte, build func(h wallet.Header) (state.TxBody, error)) error {
	if c.String("out") != "" {
		return walletExit("a private transaction goes with its ciphertext: --out is not supported", walletExitBadUsage)
	}
	key, err := loadKey(env.ks, env.signer.Name)
	if err != nil {
		return err
	}
	nonce, err := reserveNonce(c, env.ks, env.client, env.status.ChainID, env.from, env.account)
	if err != nil {
		return err
	}
	book := env.ks.Nonces()
	body, err := build(env.header(nonce))
	if err == nil {
		var tx *state.Tx
		if tx, err = wallet.Sign(body, key); err == nil {
			return submitPrivate(c, env, book, tx, kind, ct)
		}
	}
	_ = book.Release(env.status.ChainID, env.from, nonce)
	return walletFail(err)
}

func submitPrivate(c *cli.Context, env *txEnv, book *wallet.NonceBook, tx *state.Tx, kind string, ct []byte) error {
	raw, hash, err := wallet.Encode(tx)
	if err != nil {
		return walletFail(err)
	}
	_ = book.Signed(tx.Body.ChainID, tx.Body.From, tx.Body.Nonce, hash.String())
	resp, err := env.client.SubmitPrivate(c.Context, raw, ct)
	if err != nil {
		var apiErr *api.Error
		if errors.As(err, &apiErr) {
			return refusedTx(env.client, book, tx, apiErr)
		}
		return walletNodeFail(env.client, err)
	}
	out := txResultJSON{Kind: kind, ID: resp.Commitment, Hash: hash.String(), ChainID: tx.Body.ChainID,
		From: tx.Body.From.String(), Nonce: tx.Body.Nonce, Status: walletOr(resp.Status, api.TxPending)}
	if !c.Bool("json") {
		fmt.Fprintf(c.App.Writer, "commitment %s\ntx %s\n", resp.Commitment, out.Hash)
	}
	if c.Bool("wait") {
		ts, fail, err := awaitTx(c.Context, c, env.client, out.Hash, out.Status, "check with `guild tx status "+out.Hash+"`")
		if err != nil {
			return err
		}
		out.Status, out.Height, out.Error = walletOr(ts.Status, out.Status), ts.Height, ts.Error
		if fail != nil {
			return fail
		}
		if !c.Bool("json") {
			fmt.Fprintf(c.App.Writer, "committed at height %d\n", out.Height)
		}
	}
	if c.Bool("json") {
		return walletPrintJSON(c, out)
	}
	return nil
}

func commitmentArg(c *cli.Context) (state.Hash, error) {
	s, err := walletOneArg(c, "COMMITMENT")
	if err != nil {
		return state.Hash{}, err
	}
	h, err := state.ParseHash(strings.TrimPrefix(s, "0x"))
	if err != nil {
		return h, walletExit(err.Error(), walletExitBadUsage)
	}
	return h, nil
}

func privateGet(c *cli.Context) error {
	h, err := commitmentArg(c)
	if err != nil {
		return err
	}
	ks, err := walletOpen(c)
	if err != nil {
		return err
	}
	name := c.String("from")
	client := api.NewClient(c.String("node"))
	st, err := client.Status(c.Context)
	if err != nil {
		return walletNodeFail(client, err)
	}
	if _, err := ks.Get(name); err != nil {
		return walletFail(err)
	}
	key, err := loadKey(ks, name)
	if err != nil {
		return err
	}
	plain, ct, err := fetchAndOpen(c.Context, client, st.ChainID, h, key, func() ([]age.Identity, error) {
		return ks.EncryptionIdentities(name, key)
	})
	if err != nil {
		return err
	}
	if p := c.String("ciphertext-out"); p != "" {
		if err := os.WriteFile(p, ct, 0o600); err != nil {
			return walletFail(err)
		}
	}
	if out := c.String("out"); out == "-" {
		_, err = c.App.Writer.Write(plain)
	} else {
		err = os.WriteFile(out, plain, 0o600)
		if err == nil {
			fmt.Fprintf(c.App.ErrWriter, "wrote %d bytes to %s (ciphertext matches commitment %s)\n", len(plain), out, h)
		}
	}
	if err != nil {
		return walletFail(err)
	}
	return nil
}

// fetchAndOpen reads the ciphertext (the node checks that key may) and then decrypts it with
// the identities ids gives.
func fetchAndOpen(ctx context.Context, client *api.Client, chainID string, h state.Hash, key ed25519.PrivateKey, ids func() ([]age.Identity, error)) ([]byte, []byte, error) {
	ct, err := client.PrivateCiphertext(ctx, chainID, h, key)
	if err != nil {
		var apiErr *api.Error
		if errors.As(err, &apiErr) {
			return nil, nil, walletExit(fmt.Sprintf("node %s: %s", client.Base(), apiErr.Message), walletExitFailure)
		}
		return nil, nil, walletNodeFail(client, err)
	}
	identities, err := ids()
	if err != nil {
		return nil, nil, walletFail(err)
	}
	plain, err := wallet.Unseal(ct, h, identities)
	if err != nil {
		return nil, nil, walletFail(err)
	}
	return plain, ct, nil
}

func privateVerify(c *cli.Context) error {
	data, err := os.ReadFile(c.String("file"))
	if err != nil {
		return walletFail(err)
	}
	sum := state.Hash(sha256.Sum256(data))
	if c.NArg() > 0 {
		want, err := commitmentArg(c)
		if err != nil {
			return err
		}
		if want != sum {
			return walletExit(fmt.Sprintf("%s does not match commitment %s: its SHA-256 is %s", c.String("file"), want, sum), walletExitFailure)
		}
	}
	rec, err := query(c, "private payload with commitment", sum.String(), func(ctx context.Context, cl *api.Client) (api.PrivateRecord, error) {
		return cl.PrivateRecord(ctx, sum.String())
	})
	if err != nil {
		return err
	}
	if !c.Bool("json") {
		fmt.Fprintf(c.App.Writer, "%s matches the commitment committed at height %d by %s (%s) to %s\n",
			c.String("file"), rec.Height, rec.SenderMember, rec.Sender, strings.Join(rec.Recipients, ", "))
	}
	return printRecord(c, rec)
}

// memberOf is the member name whose controller is account a, or an error.
func memberOf(c *cli.Context, client *api.Client, a state.Address, role string) (string, error) {
	acct, err := walletAccount(c.Context, client, a)
	if err != nil {
		return "", err
	}
	if acct.Member == "" {
		return "", walletExit(fmt.Sprintf("the %s %s is no member's account: a private escrow's parties are members", role, a), walletExitBadUsage)
	}
	return acct.Member, nil
}

func privateEscrowCommand() *cli.Command {
	closeCmd := func(name, usage string, refund bool) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: "ID", Flags: txFlags(),
			Action: func(c *cli.Context) error {
				id, err := argID(c, "ID")
				if err != nil {
					return err
				}
				env, err := newTxEnv(c)
				if err != nil {
					return err
				}
				return sendOp(c, env, "private escrow", id, func(h wallet.Header) (state.TxBody, error) {
					return wallet.PrivateEscrowClose(h, state.PrivateEscrowClose{ID: id, Refund: refund})
				})
			},
		}
	}
	return &cli.Command{
		Name:  "escrow",
		Usage: "escrows whose amount and terms only their parties read: create, release, refund, show",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "open an escrow; its terms file is encrypted to the parties' members", ArgsUsage: "ID",
				Flags: txFlags(
					&cli.StringFlag{Name: "to", Usage: "beneficiary `NAME|ADDRESS` (a member's account)", Required: true},
					&cli.StringFlag{Name: "arbiter", Usage: "`NAME|ADDRESS` (a member's account) that may release or refund it"},
					&cli.StringFlag{Name: "terms", Usage: "the `FILE` with the amount and terms (encrypted here)", Required: true},
					&cli.Uint64Flag{Name: "deadline", Usage: "`HEIGHT` from which the depositor may refund it"},
					&cli.Uint64Flag{Name: "blocks", Usage: "deadline `N` blocks after the current height"},
					&cli.Uint64Flag{Name: "expires-in", Usage: "nodes purge the terms `N` blocks after the current height (default: never)"},
				),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					op := state.PrivateEscrowCreate{ID: id}
					if op.Beneficiary, _, err = walletResolve(c, c.String("to")); err != nil {
						return err
					}
					m, err := memberOf(c, env.client, op.Beneficiary, "beneficiary")
					if err != nil {
						return err
					}
					to := []string{m}
					if a := c.String("arbiter"); a != "" {
						addr, _, err := walletResolve(c, a)
						if err != nil {
							return err
						}
						op.Arbiter = &addr
						am, err := memberOf(c, env.client, addr, "arbiter")
						if err != nil {
							return err
						}
						to = append(to, am)
					}
					if op.Deadline, err = heightInput(c, env, "deadline", "blocks"); err != nil {
						return err
					}
					var ct []byte
					if op.Private, ct, err = sealFile(c, env, c.String("terms"), splitNames(strings.Join(to, ","))); err != nil {
						return err
					}
					return sendPrivate(c, env, "private escrow", ct, func(h wallet.Header) (state.TxBody, error) {
						return wallet.PrivateEscrowCreate(h, op)
					})
				},
			},
			closeCmd("release", "settle a private escrow as released (its depositor or arbiter, before the deadline)", false),
			closeCmd("refund", "settle a private escrow as refunded (its beneficiary or arbiter; the depositor from the deadline)", true),
			{
				Name: "show", Usage: "the public part of a private escrow", ArgsUsage: "ID", Flags: queryFlags(),
				Action: showByID("private escrow", (*api.Client).PrivateEscrow),
			},
		},
	}
}

func privateClaimCommand() *cli.Command {
	return &cli.Command{
		Name:  "claim",
		Usage: "claims whose content only issuer and subject read: issue (revoke with `guild claim revoke`)",
		Subcommands: []*cli.Command{
			{
				Name: "issue", Usage: "attest about a subject; the content file is encrypted to the recipients", ArgsUsage: "ID",
				Flags: txFlags(
					&cli.StringFlag{Name: "issuer", Usage: "issuer identity `ID` (the --from account controls it)", Required: true},
					&cli.StringFlag{Name: "subject", Usage: "subject identity `ID`", Required: true},
					&cli.StringFlag{Name: "schema", Usage: "schema `NAME`, e.g. health/v1", Required: true},
					&cli.StringFlag{Name: "file", Usage: "the claim's content `FILE` (encrypted here)", Required: true},
					&cli.StringFlag{Name: "to", Usage: "recipient members, `NAME[,NAME...]`: the subject's member at least", Required: true},
					&cli.Uint64Flag{Name: "expires-in", Usage: "nodes purge the content `N` blocks after the current height (default: never)"},
				),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					op := state.PrivateClaimIssue{ID: id, Issuer: c.String("issuer"), Subject: c.String("subject"), Schema: c.String("schema")}
					var ct []byte
					if op.Private, ct, err = sealFile(c, env, c.String("file"), splitNames(c.String("to"))); err != nil {
						return err
					}
					return sendPrivate(c, env, "private claim", ct, func(h wallet.Header) (state.TxBody, error) {
						return wallet.PrivateClaimIssue(h, op)
					})
				},
			},
		},
	}
}
