package wallet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/guild-ledger/guild/state"
)

// testWorkFactor keeps scrypt fast in tests; real keys use age's default.
const testWorkFactor = 10

func newKeystore(t *testing.T) *Keystore {
	t.Helper()
	ks, err := Open(filepath.Join(t.TempDir(), "wallet"))
	if err != nil {
		t.Fatal(err)
	}
	ks.WorkFactor = testWorkFactor
	return ks
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "wallet")
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o700 {
		t.Fatalf("keystore dir mode %v, want 0700", st.Mode().Perm())
	}
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}

func TestCreateLoadRoundTrip(t *testing.T) {
	ks := newKeystore(t)
	e, err := ks.Create("alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "alice" || e.Address != state.AddressFromPubKey(e.PubKey) {
		t.Fatalf("bad entry %+v", e)
	}
	priv, err := ks.Load("alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), e.PubKey) {
		t.Fatal("loaded key does not match created entry")
	}
	got, err := ks.Get("alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != e.Name || got.Address != e.Address || !bytes.Equal(got.PubKey, e.PubKey) {
		t.Fatalf("Get = %+v, want %+v", got, e)
	}
	// A different Keystore value on the same dir (as another process would) reads it too, and
	// the work factor of the file, not of the reader, is what counts.
	other, err := Open(ks.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Load("alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
}

func TestImport(t *testing.T) {
	ks := newKeystore(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ks.Import("validator-0", priv, DefaultTestnetPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	if e.Address != state.AddressFromPubKey(priv.Public().(ed25519.PublicKey)) {
		t.Fatal("wrong address")
	}
	got, err := ks.Load("validator-0", DefaultTestnetPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, priv) {
		t.Fatal("imported key does not round-trip")
	}

	// Seed and public halves that disagree are not a key.
	bad := bytes.Clone(priv)
	bad[40] ^= 1
	if _, err := ks.Import("bad", bad, "pw"); err == nil {
		t.Fatal("imported an inconsistent private key")
	}
	if _, err := ks.Import("short", priv[:32], "pw"); err == nil {
		t.Fatal("imported a 32-byte key")
	}
}

func TestWrongPassphrase(t *testing.T) {
	ks := newKeystore(t)
	if _, err := ks.Create("alice", "right"); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"wrong", "Right", ""} {
		if _, err := ks.Load("alice", pw); !errors.Is(err, ErrBadPassphrase) {
			t.Errorf("Load with %q: got %v, want ErrBadPassphrase", pw, err)
		}
	}
}

func TestEmptyPassphraseRefused(t *testing.T) {
	ks := newKeystore(t)
	if _, err := ks.Create("alice", ""); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("got %v, want ErrEmptyPassphrase", err)
	}
	if _, err := ks.Get("alice"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("a key was written: %v", err)
	}
}

func TestFileFormatAndMode(t *testing.T) {
	ks := newKeystore(t)
	e, err := ks.Create("alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(ks.Dir, "alice.json")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 || m["name"] != "alice" || m["address"] != e.Address.String() ||
		len(m["public_key"]) != 64 || !strings.HasPrefix(m["encrypted_key"], "-----BEGIN AGE ENCRYPTED FILE-----") {
		t.Fatalf("unexpected key file:\n%s", data)
	}
	// No temporary files are left behind.
	des, err := os.ReadDir(ks.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 1 {
		t.Fatalf("keystore holds %d files, want 1", len(des))
	}
}

func TestRefusesOverwrite(t *testing.T) {
	ks := newKeystore(t)
	first, err := ks.Create("alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Create("alice", "pw2"); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("second Create: got %v, want ErrKeyExists", err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := ks.Import("alice", priv, "pw2"); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("Import over existing: got %v, want ErrKeyExists", err)
	}
	got, err := ks.Load("alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Public().(ed25519.PublicKey), first.PubKey) {
		t.Fatal("existing key was replaced")
	}
}

// Racing creators of one name: exactly one wins, the rest get ErrKeyExists, even when all pass
// the early existence check together.
func TestConcurrentCreateOneWins(t *testing.T) {
	ks := newKeystore(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = ks.Create("alice", "pw")
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrKeyExists):
			t.Errorf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d creators won, want 1", wins)
	}
	if _, err := ks.Load("alice", "pw"); err != nil {
		t.Fatal(err)
	}
}

func TestBadNames(t *testing.T) {
	ks := newKeystore(t)
	var addr state.Address
	addr[0] = 7
	bad := []string{
		"", "Alice", "-alice", "_alice", "../alice", "a/b", `a\b`, ".", "..", ".hidden",
		"alice.json", "a b", "ålice", "a\x00b", strings.Repeat("a", 65),
		addr.String(), // a name must not read as an address
	}
	for _, name := range bad {
		if _, err := ks.Create(name, "pw"); !errors.Is(err, ErrBadName) {
			t.Errorf("Create(%q): got %v, want ErrBadName", name, err)
		}
		if _, err := ks.Get(name); !errors.Is(err, ErrBadName) {
			t.Errorf("Get(%q): got %v, want ErrBadName", name, err)
		}
		if _, err := ks.Load(name, "pw"); !errors.Is(err, ErrBadName) {
			t.Errorf("Load(%q): got %v, want ErrBadName", name, err)
		}
	}
	for _, name := range []string{"a", "0", "alice", "org-1_validator", strings.Repeat("z", 64), "guild"} {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", name, err)
		}
	}
	des, _ := os.ReadDir(ks.Dir)
	if len(des) != 0 {
		t.Fatalf("bad names left %d files", len(des))
	}
}

func TestGetMissing(t *testing.T) {
	ks := newKeystore(t)
	if _, err := ks.Get("nobody"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Get: got %v, want ErrKeyNotFound", err)
	}
	if _, err := ks.Load("nobody", "pw"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Load: got %v, want ErrKeyNotFound", err)
	}
}

func TestListSorted(t *testing.T) {
	ks := newKeystore(t)
	l, err := ks.List()
	if err != nil {
		t.Fatal(err)
	}
	if l == nil || len(l) != 0 {
		t.Fatalf("empty keystore lists %v, want an empty non-nil slice", l)
	}
	// "a-b" sorts after "a" by name but its file "a-b.json" sorts before "a.json".
	names := []string{"zed", "a-b", "a", "m1", "b"}
	for _, n := range names {
		if _, err := ks.Create(n, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	// Things that are not key files are ignored.
	for _, f := range []string{"README", "notes.txt", ".alice.123.tmp"} {
		if err := os.WriteFile(filepath.Join(ks.Dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(ks.Dir, "sub.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err = ks.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l {
		got = append(got, e.Name)
		if e.Address != state.AddressFromPubKey(e.PubKey) {
			t.Errorf("%s: address does not match key", e.Name)
		}
	}
	if want := "a a-b b m1 zed"; strings.Join(got, " ") != want {
		t.Fatalf("List = %v, want %s", got, want)
	}
}

// tamper rewrites fields of a key file.
func tamper(t *testing.T, ks *Keystore, name string, edit func(m map[string]string)) {
	t.Helper()
	path := filepath.Join(ks.Dir, name+".json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	data, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTamperedFileDetected(t *testing.T) {
	// Another key's public part, to splice into alice's file.
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	ks0 := newKeystore(t)
	if _, err := ks0.Import("other", otherPriv, "pw"); err != nil {
		t.Fatal(err)
	}
	otherFile, _ := os.ReadFile(filepath.Join(ks0.Dir, "other.json"))
	var other map[string]string
	if err := json.Unmarshal(otherFile, &other); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		edit     func(m map[string]string)
		getFails bool // detectable without the passphrase
	}{
		{"address changed", func(m map[string]string) { m["address"] = other["address"] }, true},
		{"address checksum broken", func(m map[string]string) {
			a := []byte(m["address"])
			a[len(a)-1] ^= 1
			m["address"] = string(a)
		}, true},
		{"public key changed", func(m map[string]string) { m["public_key"] = other["public_key"] }, true},
		{"public key and address swapped for another key's", func(m map[string]string) {
			m["public_key"], m["address"] = other["public_key"], other["address"]
		}, false},
		{"name changed", func(m map[string]string) { m["name"] = "bob" }, true},
		{"ciphertext missing", func(m map[string]string) { delete(m, "encrypted_key") }, true},
		{"ciphertext payload flipped", func(m map[string]string) {
			lines := strings.Split(m["encrypted_key"], "\n")
			b := []byte(lines[len(lines)-3]) // last base64 body line, in the payload
			if b[0] == 'A' {
				b[0] = 'B'
			} else {
				b[0] = 'A'
			}
			lines[len(lines)-3] = string(b)
			m["encrypted_key"] = strings.Join(lines, "\n")
		}, false},
		{"ciphertext from another key", func(m map[string]string) { m["encrypted_key"] = other["encrypted_key"] }, false},
		{"ciphertext not age", func(m map[string]string) { m["encrypted_key"] = "hello" }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ks := newKeystore(t)
			if _, err := ks.Create("alice", "pw"); err != nil {
				t.Fatal(err)
			}
			tamper(t, ks, "alice", tc.edit)
			_, err := ks.Get("alice")
			if tc.getFails && !errors.Is(err, ErrCorruptKey) {
				t.Errorf("Get: got %v, want ErrCorruptKey", err)
			}
			if !tc.getFails && err != nil {
				t.Errorf("Get: %v", err)
			}
			priv, err := ks.Load("alice", "pw")
			if err == nil {
				t.Fatalf("Load accepted a tampered file (key %x)", priv.Public())
			}
			if !errors.Is(err, ErrCorruptKey) {
				t.Errorf("Load: got %v, want ErrCorruptKey", err)
			}
			if _, err := ks.List(); tc.getFails && !errors.Is(err, ErrCorruptKey) {
				t.Errorf("List: got %v, want ErrCorruptKey", err)
			}
		})
	}
}

func TestNotJSON(t *testing.T) {
	ks := newKeystore(t)
	if err := os.WriteFile(filepath.Join(ks.Dir, "alice.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Get("alice"); !errors.Is(err, ErrCorruptKey) {
		t.Fatalf("got %v, want ErrCorruptKey", err)
	}
}

func TestWorkFactorRecorded(t *testing.T) {
	ks := newKeystore(t)
	ks.WorkFactor = 11
	if _, err := ks.Create("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	// A reader that allows less work than the file asks for still reads it: the cap is never
	// below age's default.
	ks.WorkFactor = 0
	if _, err := ks.Load("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	ks.WorkFactor = 31
	if _, err := ks.Create("bob", "pw"); err == nil {
		t.Fatal("accepted work factor 31")
	}
}
