package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/netutil"
)

// The API server: timeouts and a connection cap so that slow or idle clients cannot hold the
// node's connections and memory, optional TLS and CORS, and the operator's own listener. The
// routes are in api.go.

func (n *Node) startAPI(ctx context.Context) error {
	var tlsCfg *tls.Config
	if n.cfg.API.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(n.cfg.API.TLSCertFile, n.cfg.API.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("node: API TLS certificate (api.tls_cert_file, api.tls_key_file): %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", n.cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("node: API listen on %s: %w", n.cfg.API.Listen, err)
	}
	n.apiLn = ln
	served := netutil.LimitListener(ln, n.cfg.API.MaxConnections)
	if tlsCfg != nil {
		served = tls.NewListener(served, tlsCfg)
	}
	n.apiSrv = n.newHTTPServer(ctx, withCORS(n.cfg.API.CORSOrigins, n.apiHandler()))
	n.serve("API", n.apiSrv, served)

	if a := n.cfg.Admin.Listen; a != "" {
		aln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("node: admin listen on %s (admin.listen): %w", a, err)
		}
		if !isLoopback(aln.Addr()) {
			n.log.Warn("the admin listener is reachable from other machines, and nothing on it is authenticated "+
				"(profiles, evidence submission): set admin.listen to a loopback address such as 127.0.0.1:8646",
				"addr", aln.Addr().String())
		}
		n.adminLn = aln
		n.adminSrv = n.newHTTPServer(ctx, n.adminHandler())
		n.serve("admin", n.adminSrv, netutil.LimitListener(aln, 16))
	}
	return nil
}

func (n *Node) newHTTPServer(ctx context.Context, h http.Handler) *http.Server {
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(5*time.Second, ms(n.cfg.API.ReadTimeoutMillis)),
		ReadTimeout:       ms(n.cfg.API.ReadTimeoutMillis),
		WriteTimeout:      ms(n.cfg.API.WriteTimeoutMillis),
		IdleTimeout:       ms(n.cfg.API.IdleTimeoutMillis),
		MaxHeaderBytes:    64 << 10,
		// Requests end with the node, so Shutdown never waits on a handler blocked on it.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
}

func (n *Node) serve(what string, srv *http.Server, ln net.Listener) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error(what+" server stopped", "err", err)
		}
	}()
}

// shutdownAPI stops the API and admin servers, waiting up to ctx for requests in flight.
func (n *Node) shutdownAPI(ctx context.Context) {
	if n.adminSrv != nil {
		_ = n.adminSrv.Shutdown(ctx)
	}
	_ = n.apiSrv.Shutdown(ctx)
}

// APIAddr is the address the API listens on (useful with port 0).
func (n *Node) APIAddr() string { return n.apiLn.Addr().String() }

// AdminAddr is the admin listener's address, "" when it is off.
func (n *Node) AdminAddr() string {
	if n.adminLn == nil {
		return ""
	}
	return n.adminLn.Addr().String()
}

// operatorRoutes registers the operator endpoints where they belong: on the admin listener when there is one, else
// on the API as before it existed (profiles only with api.pprof).
func (n *Node) operatorRoutes(mux *http.ServeMux, admin bool) {
	if admin != (n.cfg.Admin.Listen != "") {
		return
	}
	mux.HandleFunc("POST /v1/evidence", n.handleSubmitEvidence)
	if admin || n.cfg.API.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
}

func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	n.operatorRoutes(mux, true)
	// Only here: it writes to the node's disk, which no API client should make it do.
	mux.HandleFunc("POST /v1/admin/checkpoint", n.handleCheckpoint)
	return guardRoutes(mux)
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// withCORS lets web pages from the allowed origins call the API: it answers the browser's
// preflight (OPTIONS with Access-Control-Request-Method) and marks answers to those origins as
// readable. Without origins it is h itself. Requests from other origins are served as before
// (CORS is the browser's protection of its user, not the node's): the browser withholds the
// answer from the page.
func withCORS(origins []string, h http.Handler) http.Handler {
	if len(origins) == 0 {
		return h
	}
	any := slices.Contains(origins, "*")
	allowed := func(o string) bool {
		return any || slices.ContainsFunc(origins, func(a string) bool { return strings.EqualFold(strings.TrimSuffix(a, "/"), o) })
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		w.Header().Add("Vary", "Origin")
		if origin == "" || !allowed(origin) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type, Last-Event-ID")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	})
}
