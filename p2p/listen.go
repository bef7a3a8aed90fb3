package p2p

import (
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"
)

// ErrListen is a configured listen address the host could not bind.
var ErrListen = errors.New("p2p: cannot listen")

// checkListening compares the addresses the host was asked to listen on with those it listens on.
// libp2p fails only when every address fails: with the TCP port taken by another process a node
// started on QUIC alone, without a word, and peers that dial its TCP address never reached it. An
// operator who wrote a port in config.toml wants that port, so a missing one is an error.
func checkListening(h host.Host, requested []string) error {
	got := h.Network().ListenAddresses()
	var missing []string
	for _, s := range requested {
		req, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("p2p: listen address %q: %w", s, err)
		}
		found := false
		for _, a := range got {
			if sameListenAddr(req, a) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w on %s (listening on %v): another process may hold the port (see `ss -ltnup`); "+
		"stop it, or change [p2p] listen in config.toml", ErrListen, strings.Join(missing, ", "), got)
}

// sameListenAddr tells whether got is what req asked for: the same protocols and values, where a
// requested port 0 matches any port.
func sameListenAddr(req, got ma.Multiaddr) bool {
	rc, gc := []ma.Component(req), []ma.Component(got)
	if len(rc) != len(gc) {
		return false
	}
	for i := range rc {
		if rc[i].Code() != gc[i].Code() {
			return false
		}
		if rc[i].Value() == gc[i].Value() {
			continue
		}
		if (rc[i].Code() == ma.P_TCP || rc[i].Code() == ma.P_UDP) && rc[i].Value() == "0" {
			continue
		}
		return false
	}
	return true
}
