package node

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guild-ledger/guild/consensus"
)

func walMessages(t *testing.T, n int) []consensus.Message {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	var out []consensus.Message
	for i := 0; i < n; i++ {
		m := consensus.Message{Type: consensus.MsgPrepare, Height: 7, From: 0, Digest: consensus.DigestOf([]byte{byte(i)})}
		consensus.Sign("wal-test", key, &m)
		out = append(out, m)
	}
	return out
}

func TestWALRoundTripAndReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), WALFile)
	w, got, err := OpenWAL(path)
	if err != nil || len(got) != 0 {
		t.Fatalf("new WAL: %v %v", got, err)
	}
	msgs := walMessages(t, 3)
	if err := w.Append(msgs[:1]); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(msgs[1:]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, got, err = OpenWAL(path)
	if err != nil || len(got) != 3 || got[2].Digest != msgs[2].Digest {
		t.Fatalf("reopened: %d messages, %v", len(got), err)
	}
	if err := w.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(msgs[:1]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, got, err = OpenWAL(path); err != nil || len(got) != 1 {
		t.Fatalf("after reset and one append: %d messages, %v", len(got), err)
	}
}

// A crash can tear only the last write, which was never sent: it is cut off. Damage with whole
// records after it is not a torn write, and the node refuses to start.
func TestWALTornTailCutCorruptionRefused(t *testing.T) {
	msgs := walMessages(t, 2)
	write := func(t *testing.T) (string, int64) {
		path := filepath.Join(t.TempDir(), WALFile)
		w, _, err := OpenWAL(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append(msgs); err != nil {
			t.Fatal(err)
		}
		w.Close()
		fi, _ := os.Stat(path)
		return path, fi.Size()
	}
	firstLen := func(path string) int64 {
		b, _ := os.ReadFile(path)
		return 8 + int64(binary.BigEndian.Uint32(b))
	}

	for _, cut := range []int64{1, 5, 9, 20} {
		path, size := write(t)
		if err := os.Truncate(path, size-cut); err != nil {
			t.Fatal(err)
		}
		_, got, err := OpenWAL(path)
		if err != nil || len(got) != 1 {
			t.Fatalf("cut %d bytes: %d messages, %v; want the first record back", cut, len(got), err)
		}
		if fi, _ := os.Stat(path); fi.Size() != firstLen(path) {
			t.Errorf("cut %d bytes: file is %d bytes, want the torn record removed", cut, fi.Size())
		}
	}

	// The last record's payload flipped: a torn write too.
	path, size := write(t)
	b, _ := os.ReadFile(path)
	b[size-1] ^= 0xff
	os.WriteFile(path, b, 0o600)
	if _, got, err := OpenWAL(path); err != nil || len(got) != 1 {
		t.Fatalf("flipped last byte: %d messages, %v", len(got), err)
	}

	// The first record's payload flipped, with a whole record after it: corrupt.
	path, _ = write(t)
	b, _ = os.ReadFile(path)
	b[12] ^= 0xff
	os.WriteFile(path, b, 0o600)
	if _, _, err := OpenWAL(path); !errors.Is(err, ErrWALCorrupt) {
		t.Fatalf("flipped first record: %v, want ErrWALCorrupt", err)
	}
}

// Damage in the middle of the WAL stops the node with a message that names the damaged record,
// its offset and the height at stake, and says when moving the file aside is safe.
func TestWALDamageMessage(t *testing.T) {
	home, _ := soloHome(t, "memdb")
	path := filepath.Join(home, DataDir, WALFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	w, _, err := OpenWAL(path)
	if err != nil {
		t.Fatal(err)
	}
	msgs := walMessages(t, 3) // height 7
	if err := w.Append(msgs); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, _ := os.ReadFile(path)
	first := 8 + int(binary.BigEndian.Uint32(b))
	b[first+12] ^= 0xff // inside the second record's payload
	os.WriteFile(path, b, 0o600)

	_, err = New(home, nil)
	var we *WALCorruptError
	if !errors.Is(err, ErrWALCorrupt) || !errors.As(err, &we) {
		t.Fatalf("New on a damaged WAL: %v, want a WALCorruptError", err)
	}
	if we.Record != 2 || we.Offset != first || we.LastHeight != 7 {
		t.Errorf("damage at record %d offset %d (last height %d), want record 2 at %d (height 7)", we.Record, we.Offset, we.LastHeight, first)
	}
	msg := err.Error()
	for _, want := range []string{
		fmt.Sprintf("record 2 (at byte %d of %d) fails its checksum", first, len(b)),
		"signed messages at height 7",
		"aside only if you are sure this validator signed nothing",
		"have committed height 7",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}

	// Damage in the first record: no height is readable, so the store's next one is named.
	b[12] ^= 0xff
	os.WriteFile(path, b, 0o600)
	_, err = New(home, nil)
	if msg := fmt.Sprint(err); !strings.Contains(msg, "record 1 (at byte 0 of") || !strings.Contains(msg, "signed messages at height 1 ") {
		t.Errorf("first record damaged: %s", msg)
	}
}

// A torn last record is cut with a WARN line that says how much and why it is normal.
func TestWALTornTailLogged(t *testing.T) {
	home, _ := soloHome(t, "memdb")
	path := filepath.Join(home, DataDir, WALFile)
	os.MkdirAll(filepath.Dir(path), 0o700)
	w, _, err := OpenWAL(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(walMessages(t, 2)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	fi, _ := os.Stat(path)
	os.Truncate(path, fi.Size()-5)
	logger, logs := newTestLogger()
	n, err := New(home, logger)
	if err != nil {
		t.Fatal(err)
	}
	n.closeStores()
	line := logs.lineWith("level=WARN", "torn record")
	if line == "" || !strings.Contains(line, "normal after a crash") || !strings.Contains(line, "records_kept=1") {
		t.Fatalf("torn tail log: %q", logs)
	}
	if !strings.Contains(line, fmt.Sprintf("bytes_cut=%d", fi.Size()-5-firstRecordLen(t, path))) {
		t.Errorf("torn tail line does not say how many bytes were cut: %s", line)
	}
}

func firstRecordLen(t *testing.T, path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return 8 + int64(binary.BigEndian.Uint32(b))
}
