package light

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Every way a proof fails has its own exit code, none of them 0, 1 (other errors) or 2 (usage).
func TestExitCodesDistinct(t *testing.T) {
	seen := map[int]error{}
	for _, err := range []error{ErrMalformed, ErrWrongChain, ErrUnknownValidatorSet, ErrTooFewSigners, ErrBadSignature, ErrPathMismatch} {
		code := ExitCode(fmt.Errorf("context: %w", err))
		if code < 3 {
			t.Fatalf("%v: exit code %d", err, code)
		}
		if other, dup := seen[code]; dup {
			t.Fatalf("%v and %v share exit code %d", err, other, code)
		}
		seen[code] = err
	}
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != 1 {
		t.Fatal("nil or other errors")
	}
}

// Parse takes a file only in the form Encode writes: no other spelling of the same content.
func TestParseCanonicalOnly(t *testing.T) {
	f := &File{Version: Version, Type: TypeState, ChainID: "c", Validators: []Change{},
		Anchor: Certified{Block: Bytes{0xab}, Certificate: Bytes{0xcd}}, Schedule: EntryProof{Key: Bytes("r/gov"), Siblings: []Hash{{1}}},
		State: &EntryProof{Key: Bytes("a/x"), Present: true, Value: Bytes{1, 2}, Siblings: []Hash{}}}
	good, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(good); err != nil {
		t.Fatalf("canonical file: %v", err)
	}
	for name, bad := range map[string]string{
		"upper-case hex":  strings.Replace(string(good), `"ab"`, `"AB"`, 1),
		"field name case": strings.Replace(string(good), `"version"`, `"Version"`, 1),
		"unknown field":   strings.Replace(string(good), `"version": 2,`, `"version": 2, "extra": 0,`, 1),
		"compact":         strings.ReplaceAll(strings.ReplaceAll(string(good), "\n", ""), "  ", ""),
		"no newline":      strings.TrimSuffix(string(good), "\n"),
		"version 1":       strings.Replace(string(good), `"version": 2`, `"version": 1`, 1),
	} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
