package node

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiHome is a solo home whose config mutate adjusts.
func apiHome(t *testing.T, mutate func(*Config)) string {
	t.Helper()
	home, _ := soloHome(t, "memdb")
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	mutate(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := SaveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	return home
}

// Clients that send a request body a trickle at a time (or not at all) are cut off after the read
// timeout, more of them than the connection cap included, and the API still answers afterwards.
func TestAPISlowBodiesAreCutOff(t *testing.T) {
	home := apiHome(t, func(c *Config) {
		c.API.ReadTimeoutMillis = 300
		c.API.MaxConnections = 4
	})
	n, _, _ := runNode(t, home)
	const slow = 10
	var wg sync.WaitGroup
	errs := make(chan error, slow)
	for range slow {
		conn, err := net.Dial("tcp", n.APIAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "POST /v1/txs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Content-Length: 1000\r\n\r\n{\"tx\": \""); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			// The server must close the connection; the test's own deadline is far longer than
			// the read timeout and is there only so that a failure ends.
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err := io.Copy(io.Discard, conn)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				errs <- errors.New("a slow-body connection was still open after 30 s")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + n.APIAddr() + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status after the slow clients: %d", resp.StatusCode)
	}
}

// TLS, CORS and the admin listener together.
func TestAPITLSCORSAndAdmin(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	home := apiHome(t, func(c *Config) {
		c.API.TLSCertFile, c.API.TLSKeyFile = certFile, keyFile
		c.API.CORSOrigins = []string{"https://explorer.example.org"}
		c.Admin.Listen = "127.0.0.1:0"
	})
	n, _, _ := runNode(t, home)
	api := "https://" + n.APIAddr()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	do := func(method, url string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(""))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	// TLS: HTTPS answers, plain HTTP does not get a page.
	if r := do("GET", api+"/v1/status", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("GET over TLS: %d", r.StatusCode)
	}
	if resp, err := http.Get("http://" + n.APIAddr() + "/v1/status"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served by a TLS API")
		}
	}

	// CORS: the allowed origin gets its preflight and readable answers; another origin does not.
	good := map[string]string{"Origin": "https://explorer.example.org", "Access-Control-Request-Method": "POST"}
	r := do("OPTIONS", api+"/v1/txs", good)
	if r.StatusCode != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != good["Origin"] ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", r.StatusCode, r.Header)
	}
	if r := do("GET", api+"/v1/status", map[string]string{"Origin": good["Origin"]}); r.Header.Get("Access-Control-Allow-Origin") != good["Origin"] {
		t.Errorf("GET from the allowed origin: %v", r.Header)
	}
	if r := do("GET", api+"/v1/status", map[string]string{"Origin": "https://evil.example"}); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET from another origin is marked readable: %v", r.Header)
	}

	// Admin: the operator endpoints moved off the API.
	admin := "http://" + n.AdminAddr()
	if r := do("GET", admin+"/debug/pprof/", nil); r.StatusCode != http.StatusOK {
		t.Errorf("pprof on the admin listener: %d", r.StatusCode)
	}
	if r := do("POST", admin+"/v1/evidence", map[string]string{"Content-Type": "application/json"}); r.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /v1/evidence (empty) on the admin listener: %d, want 400", r.StatusCode)
	}
	for _, path := range []string{"/debug/pprof/", "/v1/evidence"} {
		method := "GET"
		if path == "/v1/evidence" {
			method = "POST"
		}
		if r := do(method, api+path, map[string]string{"Content-Type": "application/json"}); r.StatusCode == http.StatusOK || r.StatusCode == http.StatusBadRequest {
			t.Errorf("%s %s still served on the API: %d", method, path, r.StatusCode)
		}
	}
}

func TestConfigRejectsBadAPISettings(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"cert without key":    func(c *Config) { c.API.TLSCertFile = "cert.pem" },
		"origin with a path":  func(c *Config) { c.API.CORSOrigins = []string{"https://x.example/app"} },
		"origin without host": func(c *Config) { c.API.CORSOrigins = []string{"explorer"} },
		"zero read timeout":   func(c *Config) { c.API.ReadTimeoutMillis = 0 },
		"no connections":      func(c *Config) { c.API.MaxConnections = 0 },
		"admin not host:port": func(c *Config) { c.Admin.Listen = "localhost" },
	} {
		cfg := DefaultConfig()
		mutate(&cfg)
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	cfg := DefaultConfig()
	cfg.API.CORSOrigins = []string{"*", "http://localhost:3000"}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key, and returns a pool trusting it.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "guild-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// Long GETs outlive the timeouts: a block wait longer than the read timeout ends with its 404, and
// the event stream, which sets its own write deadline per event, keeps going past both.
func TestAPILongRequestsOutliveTimeouts(t *testing.T) {
	home := apiHome(t, func(c *Config) {
		c.API.ReadTimeoutMillis = 200
		c.API.WriteTimeoutMillis = 1000
		c.API.EventsKeepaliveMillis = 50
	})
	n, _, _ := runNode(t, home)
	base := "http://" + n.APIAddr()

	// 500 ms fits in the write timeout, not in the read timeout: were that still running, the
	// request would be cancelled at 200 ms (answered 200 with nothing).
	resp, err := http.Get(base + "/v1/blocks/1099511627776?wait=500")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "not committed yet") {
		t.Fatalf("block wait past the read timeout: %d %q", resp.StatusCode, body)
	}

	resp, err = http.Get(base + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	rd := bufio.NewReader(resp.Body)
	start := time.Now()
	for time.Since(start) < 2*time.Second { // ten read timeouts, two write timeouts
		if _, err := rd.ReadString('\n'); err != nil {
			t.Fatalf("event stream ended after %v: %v", time.Since(start), err)
		}
	}
}
