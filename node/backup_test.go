package node

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func testArchive(t *testing.T, members map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range []string{BackupManifestFile, "config.toml", "../evil", "data/other.db/x"} {
		if body, ok := members[name]; ok {
			if err := tarBytes(tw, name, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// An archive with a member outside the home, or one a backup never holds, is refused and leaves
// the home empty; an archive without backup.json is not a backup.
func TestRestoreRefusesStrangeArchives(t *testing.T) {
	manifest := `{"format":1,"chain_id":"c","height":1}`
	for name, members := range map[string]map[string]string{
		"escape":      {BackupManifestFile: manifest, "config.toml": "x", "../evil": "x"},
		"unexpected":  {BackupManifestFile: manifest, "data/other.db/x": "x"},
		"no manifest": {"config.toml": "x"},
	} {
		home := filepath.Join(t.TempDir(), "home")
		_, err := Restore(bytes.NewReader(testArchive(t, members)), home, RestoreOptions{})
		if !errors.Is(err, ErrBackupFormat) {
			t.Errorf("%s: %v, want ErrBackupFormat", name, err)
		}
		if entries, _ := os.ReadDir(home); len(entries) != 0 {
			t.Errorf("%s: the home keeps %d entries", name, len(entries))
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(home), "evil")); err == nil {
			t.Errorf("%s: a file was written outside the home", name)
		}
	}
}
