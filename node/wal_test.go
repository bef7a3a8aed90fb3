package node

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
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
