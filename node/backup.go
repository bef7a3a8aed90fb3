package node

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state/kv"
)

// Backup and restore of a node's home. A backup is a tar.gz holding backup.json (what it is),
// config.toml, genesis.json, data/blocks.db and data/state.db: pebble checkpoints of both stores
// taken by the loop between two blocks, so both are at the same height. Keys are left out unless
// asked for, and then they travel as one age-encrypted (passphrase) member, keys.tar.age. The
// consensus WAL is never included: it only holds what was signed at the height being decided,
// which a restored copy is behind anyway (see Restore for how a restored validator is kept from
// signing twice).

// Names inside a backup archive, and inside a home.
const (
	BackupManifestFile = "backup.json"
	backupKeysMember   = "keys.tar.age"
	checkpointsDir     = "checkpoints" // inside DataDir: where checkpoints wait to be packed
	heldKeySuffix      = ".held"
)

// Backup errors.
var (
	ErrBackup       = errors.New("node: backup")
	ErrRestoreHome  = errors.New("node: restore needs an empty home")
	ErrBackupFormat = errors.New("node: not a guild backup")
)

// BackupManifest describes a backup (backup.json).
type BackupManifest struct {
	Format      int       `json:"format"`
	ChainID     string    `json:"chain_id"`
	GenesisHash string    `json:"genesis_hash"`
	Height      uint64    `json:"height"`
	Moniker     string    `json:"moniker"`
	Created     time.Time `json:"created"`
	Online      bool      `json:"online"` // taken from a running node through its admin listener
	WithKeys    bool      `json:"with_keys"`
	// ValidatorPubKey names the validator whose key the home held, in or out of the archive.
	ValidatorPubKey string `json:"validator_pub_key"`
}

// Checkpoint is a consistent copy of both stores, in Dir (blocks.db and state.db), at Height.
type Checkpoint struct {
	Height uint64 `json:"height"`
	Dir    string `json:"dir"`
	Online bool   `json:"online"`
}

type checkpointReq struct {
	reply chan checkpointRes
}

type checkpointRes struct {
	cp  Checkpoint
	err error
}

// Checkpoint asks the loop for a checkpoint of both stores between two blocks, under
// HOME/data/checkpoints. The caller packs it (WriteBackup) and removes it.
func (n *Node) Checkpoint(ctx context.Context) (Checkpoint, error) {
	req := &checkpointReq{reply: make(chan checkpointRes, 1)}
	select {
	case n.checkpoints <- req:
	case <-ctx.Done():
		return Checkpoint{}, ctx.Err()
	case <-n.stopping:
		return Checkpoint{}, fmt.Errorf("%w: the node is stopping", ErrBackup)
	}
	select {
	case res := <-req.reply:
		return res.cp, res.err
	case <-ctx.Done():
		return Checkpoint{}, ctx.Err()
	}
}

// checkpoint runs on the loop: no block is being stored or executed, so the block store and the
// state are at the same height.
func (n *Node) checkpoint() (Checkpoint, error) {
	cp, err := n.checkpointOnce()
	if err != nil {
		n.metrics.checkpoints.WithLabelValues("failed").Inc()
		n.log.Warn("a backup's checkpoint failed: check free disk space on the data directory, or stop the node and back it up offline", "err", err)
		return cp, err
	}
	n.metrics.checkpoints.WithLabelValues("ok").Inc()
	n.log.Info("checkpoint taken for a backup", "height", cp.Height, "dir", cp.Dir)
	return cp, nil
}

func (n *Node) checkpointOnce() (Checkpoint, error) {
	cp, err := checkpointStores(n.home, n.blockDB, n.stateDB)
	if err != nil {
		return cp, err
	}
	cp.Height, cp.Online = n.blocks.Height(), true
	if sh := n.st.Height(); sh != cp.Height {
		os.RemoveAll(cp.Dir)
		return Checkpoint{}, fmt.Errorf("%w: block store at %d, state at %d; try again", ErrBackup, cp.Height, sh)
	}
	return cp, nil
}

func checkpointStores(home string, blockDB, stateDB kv.Store) (Checkpoint, error) {
	base := filepath.Join(home, DataDir, checkpointsDir)
	if err := os.MkdirAll(base, 0o700); err != nil {
		return Checkpoint{}, err
	}
	dir, err := os.MkdirTemp(base, "backup-")
	if err != nil {
		return Checkpoint{}, err
	}
	for name, db := range map[string]kv.Store{"blocks": blockDB, "state": stateDB} {
		if err := kv.Checkpoint(db, filepath.Join(dir, name+".db")); err != nil {
			os.RemoveAll(dir)
			return Checkpoint{}, fmt.Errorf("%w: %s store: %w", ErrBackup, name, err)
		}
	}
	return Checkpoint{Dir: dir}, nil
}

// CheckpointOffline takes the checkpoint of a stopped node's stores. Opening them fails while a
// node holds them: ask the running node instead (its admin listener).
func CheckpointOffline(home string) (Checkpoint, error) {
	cfg, err := LoadConfig(home)
	if err != nil {
		return Checkpoint{}, err
	}
	dir := filepath.Join(home, DataDir)
	backend := kv.Backend(cfg.Storage.Backend)
	var dbs [2]kv.Store
	defer func() {
		for _, db := range dbs {
			if db != nil {
				db.Close()
			}
		}
	}()
	for i, name := range []string{"blocks", "state"} {
		if _, err := os.Stat(filepath.Join(dir, name+".db")); err != nil {
			return Checkpoint{}, fmt.Errorf("%w: no %s store in %s: %w", ErrBackup, name, dir, err)
		}
		// pebble's replay chatter has nowhere useful to go here
		if dbs[i], err = kv.OpenWith(backend, dir, name, kv.Options{Logger: slog.New(slog.DiscardHandler)}); err != nil {
			return Checkpoint{}, fmt.Errorf("%w: opening the %s store (if the node is running, set [admin] listen "+
				"in config.toml and restart it, so that backup can ask it for a checkpoint): %w", ErrBackup, name, err)
		}
	}
	blocks, err := OpenBlockStore(dbs[0])
	if err != nil {
		return Checkpoint{}, err
	}
	cp, err := checkpointStores(home, dbs[0], dbs[1])
	cp.Height = blocks.Height()
	return cp, err
}

// BackupOptions say what goes in a backup besides the stores.
type BackupOptions struct {
	// WithKeys adds the node key, the validator key and HOME/wallet, encrypted with Passphrase.
	WithKeys   bool
	Passphrase string
	// WorkFactor is the scrypt work factor (log2) of the encryption; 0: age's default.
	WorkFactor int
}

// WriteBackup writes the archive of home with checkpoint cp to w.
func WriteBackup(w io.Writer, home string, cp Checkpoint, opts BackupOptions) (*BackupManifest, error) {
	if opts.WithKeys && opts.Passphrase == "" {
		return nil, fmt.Errorf("%w: keys are only backed up encrypted: a passphrase is needed", ErrBackup)
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		return nil, err
	}
	gen, err := LoadGenesis(filepath.Join(home, GenesisFile))
	if err != nil {
		return nil, err
	}
	genHash, err := gen.Hash()
	if err != nil {
		return nil, err
	}
	m := &BackupManifest{Format: 1, ChainID: gen.ChainID, GenesisHash: genHash, Height: cp.Height, Moniker: cfg.Moniker,
		Created: time.Now().UTC().Truncate(time.Second), Online: cp.Online, WithKeys: opts.WithKeys}
	if vk, err := LoadKeyFile(filepath.Join(home, ValidatorKeyFile)); err == nil {
		m.ValidatorPubKey = hex.EncodeToString(vk.Public().(ed25519.PublicKey))
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := tarBytes(tw, BackupManifestFile, append(mb, '\n'), 0o644); err != nil {
		return nil, err
	}
	for _, f := range []string{ConfigFile, GenesisFile} {
		if err := tarFile(tw, filepath.Join(home, f), f); err != nil {
			return nil, err
		}
	}
	for _, store := range []string{"blocks.db", "state.db"} {
		if err := tarTree(tw, filepath.Join(cp.Dir, store), DataDir+"/"+store); err != nil {
			return nil, err
		}
	}
	if opts.WithKeys {
		keys, err := encryptKeys(home, opts)
		if err != nil {
			return nil, err
		}
		if err := tarBytes(tw, backupKeysMember, keys, 0o600); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return m, gz.Close()
}

// encryptKeys is a tar of the key files and the wallet, encrypted for the passphrase.
func encryptKeys(home string, opts BackupOptions) ([]byte, error) {
	var inner bytes.Buffer
	tw := tar.NewWriter(&inner)
	for _, f := range []string{NodeKeyFile, ValidatorKeyFile} {
		if err := tarFile(tw, filepath.Join(home, f), f); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(home, "wallet")); err == nil {
		if err := tarTree(tw, filepath.Join(home, "wallet"), "wallet"); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	r, err := age.NewScryptRecipient(opts.Passphrase)
	if err != nil {
		return nil, err
	}
	if opts.WorkFactor > 0 {
		r.SetWorkFactor(opts.WorkFactor)
	}
	var out bytes.Buffer
	aw, err := age.Encrypt(&out, r)
	if err != nil {
		return nil, err
	}
	if _, err := aw.Write(inner.Bytes()); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func tarBytes(tw *tar.Writer, name string, b []byte, mode int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(b)), Typeflag: tar.TypeReg,
		ModTime: time.Now().Truncate(time.Second)}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func tarFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBackup, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), Typeflag: tar.TypeReg,
		ModTime: fi.ModTime()}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, fi.Size())
	return err
}

// tarTree adds the regular files under dir as prefix/relative path.
func tarTree(tw *tar.Writer, dir, prefix string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		return tarFile(tw, path, prefix+"/"+filepath.ToSlash(rel))
	})
}

// RestoreOptions say how to restore.
type RestoreOptions struct {
	// Passphrase gives the passphrase of a backup made with keys; called only for one.
	Passphrase func() (string, error)
	// ValidatorKey puts the validator key back as validator_key.json. Without it the key is
	// written as validator_key.json.held and the home gets a new validator key that is in no
	// validator set, so the restored node only follows the chain: the original node may have
	// signed heights after the backup, and signing them again from the restored state would be
	// a double sign (a fork, on a chain it alone validates).
	ValidatorKey bool
}

// RestoreResult says what Restore did.
type RestoreResult struct {
	Manifest     BackupManifest
	KeysRestored bool
	HeldKey      string // path of the held validator key, when it was not put back
}

// maxBackupMember bounds one file of an archive, so that a damaged or hostile archive cannot fill
// the disk through one header.
const maxBackupMember = 64 << 30

// Restore unpacks a backup into home, which must be empty or absent.
func Restore(r io.Reader, home string, opts RestoreOptions) (*RestoreResult, error) {
	if entries, err := os.ReadDir(home); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%w: %s holds %d entries; choose an empty or new directory", ErrRestoreHome, home, len(entries))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	res, err := restoreInto(r, home, opts)
	if err != nil {
		// Leave the home empty, as it was, rather than half restored.
		entries, _ := os.ReadDir(home)
		for _, e := range entries {
			os.RemoveAll(filepath.Join(home, e.Name()))
		}
		return nil, err
	}
	return res, nil
}

func restoreInto(r io.Reader, home string, opts RestoreOptions) (*RestoreResult, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackupFormat, err)
	}
	tr := tar.NewReader(gz)
	res := &RestoreResult{}
	var keys []byte
	seenManifest := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBackupFormat, err)
		}
		if h.Typeflag != tar.TypeReg || !filepath.IsLocal(h.Name) || h.Size > maxBackupMember {
			return nil, fmt.Errorf("%w: unexpected member %q", ErrBackupFormat, h.Name)
		}
		switch {
		case h.Name == BackupManifestFile:
			b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(b, &res.Manifest); err != nil || res.Manifest.Format != 1 {
				return nil, fmt.Errorf("%w: %s: format %d, %v", ErrBackupFormat, BackupManifestFile, res.Manifest.Format, err)
			}
			seenManifest = true
		case h.Name == backupKeysMember:
			if keys, err = io.ReadAll(io.LimitReader(tr, 64<<20)); err != nil {
				return nil, err
			}
		case h.Name == ConfigFile || h.Name == GenesisFile || strings.HasPrefix(h.Name, DataDir+"/blocks.db/") ||
			strings.HasPrefix(h.Name, DataDir+"/state.db/"):
			if err := writeMember(home, h.Name, tr, h.FileInfo().Mode().Perm()); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: unexpected member %q", ErrBackupFormat, h.Name)
		}
	}
	if !seenManifest {
		return nil, fmt.Errorf("%w: no %s", ErrBackupFormat, BackupManifestFile)
	}
	if keys != nil {
		if err := restoreKeys(home, keys, opts, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func writeMember(home, name string, r io.Reader, mode os.FileMode) error {
	path := filepath.Join(home, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func restoreKeys(home string, enc []byte, opts RestoreOptions, res *RestoreResult) error {
	if opts.Passphrase == nil {
		return fmt.Errorf("%w: the backup holds keys and no passphrase was given", ErrBackup)
	}
	pass, err := opts.Passphrase()
	if err != nil {
		return err
	}
	id, err := age.NewScryptIdentity(pass)
	if err != nil {
		return err
	}
	ar, err := age.Decrypt(bytes.NewReader(enc), id)
	if err != nil {
		return fmt.Errorf("node: decrypting the backup's keys (wrong passphrase?): %w", err)
	}
	tr := tar.NewReader(ar)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: keys: %w", ErrBackupFormat, err)
		}
		name := h.Name
		if h.Typeflag != tar.TypeReg || !filepath.IsLocal(name) ||
			(name != NodeKeyFile && name != ValidatorKeyFile && !strings.HasPrefix(name, "wallet/")) {
			return fmt.Errorf("%w: unexpected key member %q", ErrBackupFormat, name)
		}
		if name == ValidatorKeyFile && !opts.ValidatorKey {
			name += heldKeySuffix
			res.HeldKey = filepath.Join(home, name)
		}
		if err := writeMember(home, name, io.LimitReader(tr, 1<<20), 0o600); err != nil {
			return err
		}
	}
	if res.HeldKey != "" {
		// A key in no validator set: the node starts and follows, and signs nothing.
		if _, err := GenerateKeyFile(filepath.Join(home, ValidatorKeyFile)); err != nil {
			return err
		}
	}
	res.KeysRestored = true
	return nil
}

// handleCheckpoint serves POST /v1/admin/checkpoint on the admin listener: a checkpoint of both
// stores under HOME/data/checkpoints, for `guild node backup` on the same machine to pack.
func (n *Node) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	cp, err := n.Checkpoint(ctx)
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(cp)
}

// RequestCheckpoint asks the node whose admin listener is at adminURL for a checkpoint.
func RequestCheckpoint(ctx context.Context, adminURL string) (Checkpoint, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(adminURL, "/")+"/v1/admin/checkpoint", strings.NewReader("{}"))
	if err != nil {
		return Checkpoint{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Checkpoint{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Checkpoint{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Checkpoint{}, fmt.Errorf("%w: the node answered %s: %s", ErrBackup, strconv.Itoa(resp.StatusCode), bytes.TrimSpace(body))
	}
	var cp Checkpoint
	if err := json.Unmarshal(body, &cp); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: the node's answer: %w", ErrBackup, err)
	}
	return cp, nil
}
