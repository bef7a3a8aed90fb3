// Package deploy holds the container image definition and example Kubernetes manifests of a
// Guild node; this test holds their ports, paths and probes against the node's own config and API.
package deploy

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/guild-ledger/guild/node"
)

// The files are parsed line by line (the module has no YAML library, and these files are ours):
// the patterns below are the layout they keep.
var (
	exposeRe    = regexp.MustCompile(`(?m)^EXPOSE (.+)$`)
	dockerCmdRe = regexp.MustCompile(`(?m)^CMD \["node", "start", "--home", "([^"]+)"\]$`)
	volumeRe    = regexp.MustCompile(`(?m)^VOLUME (\S+)$`)
	userRe      = regexp.MustCompile(`(?m)^USER (\S+)$`)
	portRe      = regexp.MustCompile(`(?m)^\s*- name: (\S+)\n\s*containerPort: (\d+)\n\s*protocol: (\w+)$`)
	probeRe     = regexp.MustCompile(`(?m)^\s*(livenessProbe|readinessProbe):\n\s*httpGet:\n\s*path: (\S+)\n\s*port: (\S+)$`)
	argsRe      = regexp.MustCompile(`(?m)^\s*args: \["node", "start", "--home", "([^"]+)"\]$`)
	homeMountRe = regexp.MustCompile(`(?m)^\s*- name: home\n\s*mountPath: (\S+)$`)
	configRe    = regexp.MustCompile(`(?m)^  config.toml: \|\n((?:    .*\n|\n)+)`)
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ports of a config: the API's TCP port, and the P2P listen ports by protocol (tcp, udp).
func configPorts(t *testing.T, cfg node.Config) (api int, p2p map[string]int) {
	t.Helper()
	_, port, err := net.SplitHostPort(cfg.API.Listen)
	if err != nil {
		t.Fatal(err)
	}
	api, _ = strconv.Atoi(port)
	p2p = map[string]int{}
	for _, l := range cfg.P2P.Listen {
		m, err := ma.NewMultiaddr(l)
		if err != nil {
			t.Fatal(err)
		}
		for proto, code := range map[string]int{"tcp": ma.P_TCP, "udp": ma.P_UDP} {
			if v, err := m.ValueForProtocol(code); err == nil {
				p2p[proto], _ = strconv.Atoi(v)
			}
		}
	}
	return api, p2p
}

func TestDockerfile(t *testing.T) {
	df := read(t, "Dockerfile")
	api, p2p := configPorts(t, node.DefaultConfig())
	exposed := map[string]bool{}
	if m := exposeRe.FindStringSubmatch(df); m != nil {
		for _, p := range strings.Fields(m[1]) {
			exposed[p] = true
		}
	}
	for _, want := range []string{strconv.Itoa(api), strconv.Itoa(p2p["tcp"]), strconv.Itoa(p2p["udp"]) + "/udp"} {
		if !exposed[want] {
			t.Errorf("Dockerfile does not EXPOSE %s (the default config's port)", want)
		}
	}
	if !strings.Contains(df, "CGO_ENABLED=0 go build") {
		t.Error("Dockerfile does not build a static binary (CGO_ENABLED=0)")
	}
	if u := userRe.FindStringSubmatch(df); u == nil || u[1] == "root" || strings.HasPrefix(u[1], "0") {
		t.Errorf("Dockerfile USER %v: want a non-root user", u)
	}
	cmd, vol := dockerCmdRe.FindStringSubmatch(df), volumeRe.FindStringSubmatch(df)
	if cmd == nil || vol == nil || cmd[1] != vol[1] {
		t.Errorf("Dockerfile: node start --home %v, VOLUME %v: want the home on the volume", cmd, vol)
	}
}

func TestKubernetesManifest(t *testing.T) {
	y := read(t, filepath.Join("kubernetes", "guild-node.yaml"))

	// The ConfigMap's config.toml is one the node accepts.
	m := configRe.FindStringSubmatch(y)
	if m == nil {
		t.Fatal("no config.toml in the ConfigMap")
	}
	home := t.TempDir()
	var toml strings.Builder
	for _, line := range strings.Split(m[1], "\n") {
		toml.WriteString(strings.TrimPrefix(line, "    ") + "\n")
	}
	if err := os.WriteFile(filepath.Join(home, node.ConfigFile), []byte(toml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := node.LoadConfig(home)
	if err != nil {
		t.Fatalf("the ConfigMap's config.toml: %v", err)
	}
	api, p2p := configPorts(t, cfg)
	host, _, _ := net.SplitHostPort(cfg.API.Listen)
	if host != "0.0.0.0" {
		t.Errorf("api.listen %s: the kubelet probes the pod's address, so listen on 0.0.0.0", cfg.API.Listen)
	}
	if defAPI, defP2P := configPorts(t, node.DefaultConfig()); api != defAPI || p2p["tcp"] != defP2P["tcp"] || p2p["udp"] != defP2P["udp"] {
		t.Errorf("the ConfigMap's ports (%d, %v) are not the defaults the image EXPOSEs (%d, %v)", api, p2p, defAPI, defP2P)
	}

	// Container ports are the config's.
	ports := map[string]int{}
	for _, pm := range portRe.FindAllStringSubmatch(y, -1) {
		ports[pm[1]], _ = strconv.Atoi(pm[2])
		if want := map[string]string{"api": "TCP", "p2p": "TCP", "p2p-quic": "UDP"}[pm[1]]; want != pm[3] {
			t.Errorf("container port %s: protocol %s, want %s", pm[1], pm[3], want)
		}
	}
	if ports["api"] != api || ports["p2p"] != p2p["tcp"] || ports["p2p-quic"] != p2p["udp"] {
		t.Errorf("container ports %v; config: api %d, p2p %v", ports, api, p2p)
	}

	// Probes: /healthz for liveness, /readyz for readiness, both routes of the node's API.
	var spec struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(read(t, filepath.Join("..", "node", "openapi.json"))), &spec); err != nil {
		t.Fatal(err)
	}
	probes := map[string]string{}
	for _, pm := range probeRe.FindAllStringSubmatch(y, -1) {
		probes[pm[1]] = pm[2]
		if pm[3] != "api" {
			t.Errorf("%s on port %s, want the api port", pm[1], pm[3])
		}
		if _, ok := spec.Paths[pm[2]]; !ok {
			t.Errorf("%s path %s is not a route of the node's API", pm[1], pm[2])
		}
	}
	if probes["livenessProbe"] != "/healthz" || probes["readinessProbe"] != "/readyz" {
		t.Errorf("probes %v: want liveness /healthz, readiness /readyz", probes)
	}

	// The persistent volume is the home the node starts with.
	args, mount := argsRe.FindStringSubmatch(y), homeMountRe.FindStringSubmatch(y)
	if args == nil || mount == nil || args[1] != mount[1] || !strings.Contains(y, "volumeClaimTemplates:") {
		t.Errorf("node start --home %v, home volume mounted at %v: want the home on the claimed volume", args, mount)
	}
}
