package p2p

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The address book remembers the listen addresses that allowed peers announced (identify), so a
// node that restarts redials the members it knew even when they were found by mDNS or the DHT
// rather than configured. It is a small JSON file, rewritten atomically on every change.
const (
	maxAddrBookBytes = 1 << 20
	maxBookPeers     = 1024
	maxBookAddrs     = 16 // per peer
)

type addrBookFile struct {
	Peers map[string][]string `json:"peers"`
}

type addrBook struct {
	path string
	mu   sync.Mutex
	book map[peer.ID][]string // sorted addresses
}

// loadAddrBook reads path; a missing file is an empty book. A corrupt one is an error: the operator
// should see it rather than have the node silently forget its peers.
func loadAddrBook(path string) (*addrBook, error) {
	ab := &addrBook{path: path, book: map[peer.ID][]string{}}
	if path == "" {
		return ab, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ab, nil
	}
	if err != nil {
		return nil, fmt.Errorf("p2p: address book: %w", err)
	}
	if len(b) > maxAddrBookBytes {
		return nil, fmt.Errorf("p2p: address book %s is over %d bytes", path, maxAddrBookBytes)
	}
	var f addrBookFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("p2p: address book %s: %w", path, err)
	}
	for s, addrs := range f.Peers {
		id, err := peer.Decode(s)
		if err != nil || len(ab.book) >= maxBookPeers {
			continue
		}
		var ok []string
		for _, a := range addrs {
			if _, err := ma.NewMultiaddr(a); err == nil && len(ok) < maxBookAddrs {
				ok = append(ok, a)
			}
		}
		slices.Sort(ok)
		if len(ok) > 0 {
			ab.book[id] = ok
		}
	}
	return ab, nil
}

// infos gives the remembered peers that keep admits, with parsed addresses.
func (ab *addrBook) infos(keep func(peer.ID) bool) []peer.AddrInfo {
	ab.mu.Lock()
	defer ab.mu.Unlock()
	var out []peer.AddrInfo
	for id, addrs := range ab.book {
		if !keep(id) {
			continue
		}
		pi := peer.AddrInfo{ID: id}
		for _, a := range addrs {
			if m, err := ma.NewMultiaddr(a); err == nil {
				pi.Addrs = append(pi.Addrs, m)
			}
		}
		out = append(out, pi)
	}
	return out
}

// learn records p's addresses and saves the book if they changed.
func (ab *addrBook) learn(p peer.ID, addrs []ma.Multiaddr) error {
	if ab.path == "" || len(addrs) == 0 {
		return nil
	}
	s := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if len(s) < maxBookAddrs {
			s = append(s, a.String())
		}
	}
	slices.Sort(s)
	ab.mu.Lock()
	defer ab.mu.Unlock()
	if slices.Equal(ab.book[p], s) {
		return nil
	}
	if _, known := ab.book[p]; !known && len(ab.book) >= maxBookPeers {
		return nil
	}
	ab.book[p] = s
	return ab.saveLocked()
}

// prune forgets peers that keep does not admit, and saves the book if any were forgotten.
func (ab *addrBook) prune(keep func(peer.ID) bool) error {
	ab.mu.Lock()
	defer ab.mu.Unlock()
	n := len(ab.book)
	for id := range ab.book {
		if !keep(id) {
			delete(ab.book, id)
		}
	}
	if ab.path == "" || n == len(ab.book) {
		return nil
	}
	return ab.saveLocked()
}

// saveLocked writes the book to a temporary file, syncs it and renames it over the old one, so a
// crash leaves either the old book or the new one. Caller holds ab.mu.
func (ab *addrBook) saveLocked() error {
	f := addrBookFile{Peers: make(map[string][]string, len(ab.book))}
	for id, addrs := range ab.book {
		f.Peers[id.String()] = addrs
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(ab.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(ab.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("p2p: address book: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing to remove
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("p2p: address book: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("p2p: address book: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("p2p: address book: %w", err)
	}
	if err := os.Rename(tmp.Name(), ab.path); err != nil {
		return fmt.Errorf("p2p: address book: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
