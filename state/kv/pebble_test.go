package kv

import (
	"bytes"
	"encoding/json"
	"errors"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
)

// A table damaged on disk (bytes flipped in an sstable) is reported as ErrStorage naming the
// store's path, not as an absent key and not as a bare pebble message.
func TestDamagedTableIsStorageError(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	opts := Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	s, err := OpenWith(PebbleDB, dir, "blocks", opts)
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	for i := range 200 {
		if err := b.Set([]byte{'k', byte(i)}, bytes.Repeat([]byte{byte(i)}, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Reopening replays pebble's log into a table on disk.
	if s, err = OpenWith(PebbleDB, dir, "blocks", opts); err != nil {
		t.Fatal(err)
	}
	s.Close()
	tables, _ := filepath.Glob(filepath.Join(dir, "blocks.db", "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no sstable written")
	}
	for _, tbl := range tables {
		data, err := os.ReadFile(tbl)
		if err != nil {
			t.Fatal(err)
		}
		for i := 100; i < 116 && i < len(data); i++ {
			data[i] ^= 0xff
		}
		if err := os.WriteFile(tbl, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err = OpenWith(PebbleDB, dir, "blocks", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Get([]byte{'k', 1})
	if !errors.Is(err, ErrStorage) {
		t.Fatalf("read of a damaged table: %v, want ErrStorage", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, "blocks.db")) {
		t.Errorf("error %q does not name the store", err)
	}
}

// Pebble's fatal errors come out as one ERROR line that says what to do, then exit code 70.
func TestPebbleFatalLogsAndExits(t *testing.T) {
	var logs bytes.Buffer
	code := -1
	l := &pebbleLogger{log: slog.New(slog.NewTextHandler(&logs, nil)), path: "/x/blocks.db", exit: func(c int) { code = c }}
	l.Fatalf("pebble: fatal commit error: %v", "write /x/blocks.db/000004.log: no space left on device")
	if code != ExitStorageFatal {
		t.Fatalf("exit code %d, want %d", code, ExitStorageFatal)
	}
	out := logs.String()
	for _, want := range []string{"level=ERROR", "free space", "no space left on device"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}

// With a JSON logger, pebble's own lines (log replay at open) come out as JSON lines of the node's
// log, and nothing goes to the standard library logger (whose plain text would break a JSON log).
func TestPebbleLogsStayJSON(t *testing.T) {
	var std bytes.Buffer
	log.SetOutput(&std)
	defer log.SetOutput(os.Stderr)
	var logs bytes.Buffer
	opts := Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	dir := t.TempDir()
	for range 2 { // the second open replays the first one's write-ahead log
		s, err := OpenWith(PebbleDB, dir, "state", opts)
		if err != nil {
			t.Fatal(err)
		}
		b := s.NewBatch()
		if err := b.Set([]byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := b.Write(); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if std.Len() > 0 {
		t.Errorf("pebble wrote to the standard logger:\n%s", std.String())
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	pebbleLines := 0
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if rec["component"] == "pebble" {
			pebbleLines++
		}
	}
	if pebbleLines == 0 {
		t.Fatalf("no line from pebble in:\n%s", logs.String())
	}
}

// A checkpoint of a pebble store opens as a store with the same contents, later writes to the
// original not in it; memdb has none.
func TestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(PebbleDB, dir, "state")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.NewBatch()
	if err := b.Set([]byte("k"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "cp")
	if err := Checkpoint(s, filepath.Join(cp, "state.db")); err != nil {
		t.Fatal(err)
	}
	b = s.NewBatch()
	b.Set([]byte("k"), []byte("v2"))
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(PebbleDB, cp, "state")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := c.Get([]byte("k")); err != nil || string(v) != "v1" {
		t.Fatalf("checkpoint holds %q, %v; want v1", v, err)
	}
	m, _ := Open(MemDB, "", "")
	if err := Checkpoint(m, filepath.Join(t.TempDir(), "m")); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("memdb checkpoint: %v", err)
	}
}

// killedCopy copies a store's directory as a killed process would leave it: what its writes have
// handed to the operating system, and nothing still in the process's own buffers.
func killedCopy(t *testing.T, dir, name string) string {
	t.Helper()
	src := filepath.Join(dir, name+".db")
	dst := filepath.Join(t.TempDir(), name+".db")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(dst)
}

// Write survives the process being killed right after it returns; WriteNoSync need not (pebble
// keeps an unsynced record in its log writer's block buffer until the block fills or a later
// sync flushes it). The node's pending log relied on WriteNoSync for transactions it had
// answered 202 to, and a validator killed in a chaos run took some with it: every later nonce of
// their senders then waited behind the gap for good.
func TestWriteSurvivesAKill(t *testing.T) {
	for _, backend := range []Backend{PebbleDB, GoLevelDB} {
		t.Run(string(backend), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(backend, dir, "blocks")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			b := s.NewBatch()
			if err := b.Set([]byte("synced"), []byte("v")); err != nil {
				t.Fatal(err)
			}
			if err := b.Write(); err != nil {
				t.Fatal(err)
			}
			copyDir := killedCopy(t, dir, "blocks")
			c, err := Open(backend, copyDir, "blocks")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if v, err := c.Get([]byte("synced")); err != nil || string(v) != "v" {
				t.Fatalf("after a kill, a batch written with Write reads %q (%v), want %q", v, err, "v")
			}
		})
	}
}

// A pebble store opened as the node opens its stores (with a logger) runs with the tuned
// memtable and level-0 sizing, as the OPTIONS file pebble writes for the open store records;
// pebble's defaults (4 MiB, 4 and 12) made the block store's level-0 compactions a seventh of a
// validator's CPU under load.
func TestPebbleStoreUsesTunedSizes(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenWith(PebbleDB, dir, "blocks", Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	files, err := filepath.Glob(filepath.Join(dir, "blocks.db", "OPTIONS-*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no OPTIONS file: %v", err)
	}
	b, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mem_table_size=8388608", "l0_compaction_threshold=8", "l0_stop_writes_threshold=24"} {
		if !strings.Contains(string(b), "\n  "+want+"\n") {
			t.Errorf("OPTIONS lacks %q:\n%s", want, b)
		}
	}
}

// The engine's events are counted for Stats: a write stall shows as going on (and in the time
// stalled) until it ends, slow disk operations and background errors as counts; stores without
// an engine to report on say so.
func TestEngineStats(t *testing.T) {
	s, err := OpenWith(PebbleDB, t.TempDir(), "blocks", Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.NewBatch()
	if err := errors.Join(b.Set([]byte("k"), []byte("v")), b.Write(), b.Close()); err != nil {
		t.Fatal(err)
	}
	es, ok := Stats(s)
	if !ok || es.WriteStalls != 0 || !es.StalledSince.IsZero() || es.StalledFor != 0 {
		t.Fatalf("fresh store: %+v %v", es, ok)
	}
	// What pebble calls when compaction falls behind, and after.
	l := s.(*store).engine.listener()
	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "L0 file count limit exceeded"})
	time.Sleep(20 * time.Millisecond)
	es, _ = Stats(s)
	if es.WriteStalls != 1 || es.StalledSince.IsZero() || es.StalledFor < 20*time.Millisecond {
		t.Fatalf("during a stall: %+v", es)
	}
	l.WriteStallEnd()
	l.DiskSlow(pebble.DiskSlowInfo{Path: "x", Duration: time.Second})
	l.BackgroundError(errors.New("compaction failed"))
	ended, _ := Stats(s)
	time.Sleep(10 * time.Millisecond)
	later, _ := Stats(s)
	if !later.StalledSince.IsZero() || later.StalledFor != ended.StalledFor || later.StalledFor < 20*time.Millisecond ||
		later.SlowDiskOps != 1 || later.BackgroundErrors != 1 || later.WriteStalls != 1 {
		t.Fatalf("after the stall: %+v, then %+v", ended, later)
	}
	for _, b := range []Backend{MemDB, GoLevelDB} {
		other, err := Open(b, t.TempDir(), "other")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := Stats(other); ok {
			t.Errorf("%s reports engine stats", b)
		}
		other.Close()
	}
}
