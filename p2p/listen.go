package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"
)

// ErrListen is a configured listen address the host could not bind.
var ErrListen = errors.New("p2p: cannot listen")

// checkListening compares the addresses the host was asked to listen on with those it listens on.
// libp2p fails only when every address fails: with the TCP port taken by another process a node
// started on QUIC alone, without a word, and peers that dial its TCP address (bootstrap lists and
// manifests carry TCP addresses) never reached it. An operator who wrote a TCP port in config.toml
// wants that port, so a missing one is an error. A missing QUIC (UDP) address is a WARN: peers
// still reach the node over TCP, and a testnet takes the UDP port of the same number as its TCP
// one without knowing whether it is free.
func checkListening(h host.Host, requested []string, log *slog.Logger) error {
	got := h.Network().ListenAddresses()
	var missingTCP []string
	for _, s := range requested {
		req, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("p2p: listen address %q: %w", s, err)
		}
		if slices.ContainsFunc(got, func(a ma.Multiaddr) bool { return sameListenAddr(req, a) }) {
			continue
		}
		if _, err := req.ValueForProtocol(ma.P_UDP); err == nil {
			log.Warn("p2p: not listening on a configured QUIC address: another process may hold the UDP port; "+
				"peers reach this node over TCP only. Free the port, or change [p2p] listen in config.toml",
				"addr", s, "listening", fmt.Sprint(got))
			continue
		}
		missingTCP = append(missingTCP, s)
	}
	if len(missingTCP) == 0 {
		return nil
	}
	return fmt.Errorf("%w on %s (listening on %v): another process may hold the port (see `ss -ltnp`); "+
		"stop it, or change [p2p] listen in config.toml", ErrListen, strings.Join(missingTCP, ", "), got)
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
