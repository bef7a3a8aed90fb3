package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigRejectsBadLogSettings(t *testing.T) {
	for _, tt := range []struct {
		toml, want string
	}{
		{"[log]\nlevel = \"verbose\"\n", `log level "verbose": want debug, info, warn or error`},
		{"[log]\nformat = \"xml\"\n", `log format "xml": want text or json`},
	} {
		home := t.TempDir()
		if err := os.WriteFile(filepath.Join(home, ConfigFile), []byte(tt.toml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(home)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %q", tt.toml, err, tt.want)
		}
	}
	for _, ok := range []LogConfig{{"debug", "json"}, {"WARN", "text"}, {"error", "JSON"}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}
