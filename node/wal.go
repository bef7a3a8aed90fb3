package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/guild-ledger/guild/consensus"
)

// WAL is the consensus write-ahead log. Every message this validator signs is appended and synced
// before it is sent, so that after a crash the core is restored with it and never signs something
// different for the same (height, view, type) — the crash-safety rule of docs/protocol.md. Once a height's
// block is stored, nothing signed for it matters again, so the log is emptied at every commit and
// stays the size of one height's messages.
//
// A record is uint32 length ‖ uint32 CRC-32C of the payload ‖ payload (consensus.EncodeMessage),
// big-endian. Only the loop goroutine uses a WAL.
type WAL struct {
	f    *os.File
	path string
}

// maxWALRecord bounds a record: the largest message is a pre-prepare carrying a full block.
const maxWALRecord = MaxBlockBytes + 64<<10

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)
	// ErrWALCorrupt is a damaged record with intact records after it: not a torn last write, so
	// the log cannot be trusted and the node must not start on it.
	ErrWALCorrupt = errors.New("node: consensus WAL is corrupt")
)

// OpenWAL opens (or creates) the log at path and returns the messages it holds, in order. A torn
// last record — a write the crash interrupted, which therefore was never sent — is cut off; any
// other damage is ErrWALCorrupt.
func OpenWAL(path string) (*WAL, []consensus.Message, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("node: opening consensus WAL: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("node: reading consensus WAL: %w", err)
	}
	msgs, good, err := parseWAL(data)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s: %v; this validator may have signed messages that are "+
			"now unreadable, so it refuses to start rather than risk signing conflicting ones. Restore "+
			"the file from a backup, or move it aside once the chain has moved past height %s",
			ErrWALCorrupt, path, err, heightHint(msgs))
	}
	if good < len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("node: cutting the torn tail of the consensus WAL: %w", err)
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return &WAL{f: f, path: path}, msgs, nil
}

// parseWAL reads records until the data ends. It returns the messages and how many bytes hold
// whole records; a torn last record is not an error.
func parseWAL(data []byte) ([]consensus.Message, int, error) {
	var msgs []consensus.Message
	off := 0
	for off < len(data) {
		if len(data)-off < 8 {
			return msgs, off, nil // torn header
		}
		n := int(binary.BigEndian.Uint32(data[off:]))
		sum := binary.BigEndian.Uint32(data[off+4:])
		if n > maxWALRecord {
			return msgs, off, fmt.Errorf("record at offset %d claims %d bytes", off, n)
		}
		end := off + 8 + n
		if end > len(data) {
			return msgs, off, nil // torn payload
		}
		payload := data[off+8 : end]
		if crc32.Checksum(payload, crcTable) != sum {
			if end == len(data) {
				return msgs, off, nil // the last write, torn inside its payload
			}
			return msgs, off, fmt.Errorf("record at offset %d fails its checksum", off)
		}
		m, err := consensus.DecodeMessage(payload, maxWALRecord)
		if err != nil {
			return msgs, off, fmt.Errorf("record at offset %d: %w", off, err)
		}
		msgs = append(msgs, *m)
		off = end
	}
	return msgs, off, nil
}

func heightHint(msgs []consensus.Message) string {
	if len(msgs) == 0 {
		return "the last one this node stored"
	}
	return fmt.Sprint(msgs[len(msgs)-1].Height)
}

// Append writes msgs and syncs them to disk before returning: only then may they be sent.
func (w *WAL) Append(msgs []consensus.Message) error {
	var buf []byte
	for i := range msgs {
		payload, err := consensus.EncodeMessage(&msgs[i])
		if err != nil {
			return err
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(payload)))
		buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(payload, crcTable))
		buf = append(buf, payload...)
	}
	if _, err := w.f.Write(buf); err != nil {
		return fmt.Errorf("node: writing consensus WAL: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("node: syncing consensus WAL: %w", err)
	}
	return nil
}

// Reset empties the log once a height's block is durably stored. It need not be synced: if the
// crash comes first, the old records are for a decided height, which restore ignores.
func (w *WAL) Reset() error {
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("node: emptying consensus WAL: %w", err)
	}
	_, err := w.f.Seek(0, io.SeekStart)
	return err
}

// Close closes the file.
func (w *WAL) Close() error { return w.f.Close() }
