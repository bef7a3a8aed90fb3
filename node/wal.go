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
	// torn is how many bytes of a torn last record OpenWAL cut off, and kept how many whole
	// records it read, for the node's log.
	torn, kept int
}

// maxWALRecord bounds a record: the largest message is a pre-prepare carrying a full block.
const maxWALRecord = MaxBlockBytes + 64<<10

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)
	// ErrWALCorrupt is a damaged record with intact records after it: not a torn last write, so
	// the log cannot be trusted and the node must not start on it.
	ErrWALCorrupt = errors.New("node: consensus WAL is corrupt")
	// errWALWrite is a failed write or sync of the WAL: lost durability, the node stops.
	errWALWrite = errors.New("node: writing consensus WAL")
)

// WALCorruptError is ErrWALCorrupt with where the damage is and what the readable records say.
type WALCorruptError struct {
	Path   string
	Record int // 1-based number of the damaged record
	Offset int // its byte offset
	Size   int // the file's size
	Reason string
	// LastHeight is the height of the last readable record before the damage (0: none).
	LastHeight uint64
	// StoreHeight is the node's last stored block, when known (0 otherwise).
	StoreHeight uint64
}

func (e *WALCorruptError) Is(target error) bool { return target == ErrWALCorrupt }

func (e *WALCorruptError) Error() string {
	// The log holds only what was signed for heights not yet stored: the damaged records are for
	// the height after the store's, or the last readable record's, whichever is higher.
	h := max(e.LastHeight, e.StoreHeight+1)
	return fmt.Sprintf("%v: %s: record %d (at byte %d of %d) %s, and it is not a last write torn by a crash: this is "+
		"damage. This validator may have signed messages at height %d that it "+
		"can no longer read, so it refuses to start rather than risk signing conflicting ones. Move %s "+
		"aside only if you are sure this validator signed nothing since its last stored block; otherwise "+
		"restore it from a backup, or keep this node stopped until the other validators have committed "+
		"height %d (GET /v1/status on one of them shows its height) and only then move it aside",
		ErrWALCorrupt, e.Path, e.Record, e.Offset, e.Size, e.Reason, h, e.Path, h)
}

// walCorruptAt adds the node's stored height to a WALCorruptError.
func walCorruptAt(err error, storeHeight uint64) error {
	var we *WALCorruptError
	if errors.As(err, &we) {
		we.StoreHeight = storeHeight
	}
	return err
}

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
		we := &WALCorruptError{Path: path, Record: len(msgs) + 1, Offset: good, Size: len(data), Reason: err.Error()}
		if len(msgs) > 0 {
			we.LastHeight = msgs[len(msgs)-1].Height
		}
		return nil, nil, we
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
	return &WAL{f: f, path: path, torn: len(data) - good, kept: len(msgs)}, msgs, nil
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
			return msgs, off, fmt.Errorf("claims %d bytes, more than a record can hold", n)
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
			return msgs, off, errors.New("fails its checksum")
		}
		m, err := consensus.DecodeMessage(payload, maxWALRecord)
		if err != nil {
			return msgs, off, fmt.Errorf("does not decode: %w", err)
		}
		msgs = append(msgs, *m)
		off = end
	}
	return msgs, off, nil
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
		return fmt.Errorf("%w %s: %w", errWALWrite, w.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("%w %s (sync): %w", errWALWrite, w.path, err)
	}
	return nil
}

// Reset empties the log once a height's block is durably stored. It need not be synced: if the
// crash comes first, the old records are for a decided height, which restore ignores.
func (w *WAL) Reset() error {
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("%w %s (emptying it): %w", errWALWrite, w.path, err)
	}
	_, err := w.f.Seek(0, io.SeekStart)
	return err
}

// Close closes the file.
func (w *WAL) Close() error { return w.f.Close() }
