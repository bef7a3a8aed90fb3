package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

// runGuild runs the CLI in-process with args (after "guild"), as main does, and returns stdout,
// stderr and the error with its exit code instead of exiting.
func runGuild(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	app.ExitErrHandler = func(*cli.Context, error) {} // return the error, do not exit
	err := app.Run(flagsFirst(app, append([]string{"guild"}, args...)))
	return out.String(), errOut.String(), err
}

func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

const testPass = "test-passphrase"

func testWallet(t *testing.T, names ...string) (string, map[string]wallet.Entry) {
	t.Helper()
	dir := t.TempDir()
	ks, err := wallet.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ks.WorkFactor = 10
	entries := map[string]wallet.Entry{}
	for _, n := range names {
		if entries[n], err = ks.Create(n, testPass); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(wallet.PassphraseEnv, testPass)
	return dir, entries
}

// Officers co-sign a saved transaction offline, several keys in one command or one at a time,
// and the file then holds a transaction that state accepts as signed by exactly them.
func TestTxSignCoSignsOffline(t *testing.T) {
	dir, keys := testWallet(t, "alice", "bob", "carol")
	var treasury, to state.Address
	treasury[0], to[0] = 7, 8
	body, err := wallet.AssetTransfer(wallet.Header{ChainID: "c1", From: treasury, Nonce: 1},
		state.AssetTransfer{Symbol: "USDG", To: to, Amount: 250})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pay.json")
	if err := wallet.WriteTxFile(path, &state.Tx{Body: body}); err != nil {
		t.Fatal(err)
	}
	// No node anywhere: --node is not even a flag of tx sign. The file comes before the flags.
	if _, stderr, err := runGuild(t, "tx", "sign", path, "--from", "alice", "--from", "bob", "--wallet", dir); err != nil {
		t.Fatalf("tx sign: %v\n%s", err, stderr)
	} else if !strings.Contains(stderr, "AssetTransfer") || !strings.Contains(stderr, "hash to sign") {
		t.Errorf("tx sign did not show what is signed: %q", stderr)
	}
	_, _, err = runGuild(t, "tx", "sign", path, "--from", "bob", "--wallet", dir)
	if exitCode(err) != 1 {
		t.Errorf("bob signing twice: want exit 1, got %v", err)
	}
	out, _, err := runGuild(t, "tx", "show", path, "--json")
	if err != nil || !strings.Contains(out, keys["alice"].Address.String()) || !strings.Contains(out, keys["bob"].Address.String()) ||
		strings.Contains(out, keys["carol"].Address.String()) {
		t.Fatalf("tx show: %v\n%s", err, out)
	}
	tx, err := wallet.ReadTxFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := wallet.Encode(tx)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := state.DecodeTx(raw)
	if err != nil || len(dec.Sigs) != 2 {
		t.Fatalf("decoded: %+v %v", dec, err)
	}
	if err := state.VerifyTx("c1", dec); err != nil {
		t.Fatalf("signatures do not verify: %v", err)
	}
}

// Usage mistakes are exit status 2 and are caught before any node is asked (the one named here
// does not exist) or any passphrase is needed.
func TestOpCommandsRefuseBadUsageFirst(t *testing.T) {
	dir, _ := testWallet(t, "alice")
	node := "http://127.0.0.1:1"
	for _, args := range [][]string{
		{"asset", "create", "gld", "--name", "Gold"},
		{"asset", "create", "GLD", "--name", "Gold", "--decimals", "19"},
		{"item", "register", "bad id", "--metadata", "x"},
		{"item", "register", "d1"},
		{"item", "register", "d1", "--metadata", "x", "--metadata-hash", strings.Repeat("ab", 32)},
		{"notary", "anchor"},
		{"notary", "lookup", "--hash", "abc", "--"},
		{"escrow", "create", "e1", "--to", "alice", "--amount", "5", "--blocks", "10"},
		{"escrow", "release", "e1", "--secret", "a", "--preimage", "61"},
		{"gov", "propose", "p1", "--param", "max_block_txs"},
		{"gov", "propose", "p1", "--remove-member", "x", "--param", "max_block_txs", "--value", "3"},
		{"gov", "vote", "p1", "--yes", "--no"},
		{"claim", "issue", "c1", "--issuer", "a", "--subject", "b", "--schema", "s"},
	} {
		if args[len(args)-1] == "--" { // a query: no --from
			args = append(args[:len(args)-1], "--wallet", dir, "--node", node)
		} else {
			args = append(args, "--from", "alice", "--wallet", dir, "--node", node)
		}
		if _, stderr, err := runGuild(t, args...); exitCode(err) != 2 {
			t.Errorf("%q: want exit status 2, got %v (%s)", args, err, stderr)
		}
	}
}

func TestPrintRecordPlain(t *testing.T) {
	type ev struct {
		Seq    int   `json:"seq"`
		TimeMs int64 `json:"time_ms"`
	}
	v := struct {
		ID      string          `json:"id"`
		Keys    []string        `json:"keys"`
		Inner   struct{ N int } `json:"inner"`
		History []ev            `json:"history"`
		None    *int            `json:"none"`
	}{ID: "d1", Keys: []string{"a", "b"}, History: []ev{{0, 0}, {1, 1795700400900}}}
	v.Inner.N = 3
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	app.Commands = []*cli.Command{{Name: "p", Flags: []cli.Flag{walletJSONFlag()},
		Action: func(c *cli.Context) error { return printRecord(c, v) }}}
	if err := app.Run([]string{"guild", "p"}); err != nil {
		t.Fatal(err)
	}
	want := `id: d1
keys: [a, b]
inner:
  N: 3
history:
  - seq: 0
    time_ms: 0
  - seq: 1
    time_ms: 1795700400900 (2026-11-26T13:40:00Z)
none: -
`
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestOptionIndex(t *testing.T) {
	opts := []string{"Lisbon", "Oslo", "1"}
	for in, want := range map[string]uint32{"Lisbon": 0, "Oslo": 1, "1": 2, "0": 0} {
		if got, err := optionIndex(opts, in); err != nil || got != want {
			t.Errorf("optionIndex(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"Paris", "3", "-1"} {
		if _, err := optionIndex(opts, in); err == nil {
			t.Errorf("optionIndex(%q) accepted", in)
		}
	}
}
