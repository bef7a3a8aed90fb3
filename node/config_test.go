package node

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
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

// memory_limit_mb: 0 leaves the runtime alone, a value below the floor or negative is refused,
// and a valid one becomes the process's soft memory limit.
func TestMemoryLimit(t *testing.T) {
	for _, mb := range []int{-1, 1, minMemoryLimitMB - 1} {
		cfg := DefaultConfig()
		cfg.MemoryLimitMB = mb
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "memory_limit_mb") {
			t.Errorf("memory_limit_mb = %d: %v", mb, err)
		}
	}
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	cfg := DefaultConfig()
	cfg.ApplyMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Fatalf("memory_limit_mb = 0 changed the limit to %d", got)
	}
	cfg.MemoryLimitMB = 256
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.ApplyMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != 256<<20 {
		t.Fatalf("limit %d after memory_limit_mb = 256", got)
	}
}
