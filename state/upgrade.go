package state

import (
	"errors"
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Protocol versions and the upgrades that change them (issue #13, rolling upgrades).
//
// A protocol version names a set of rules for executing and checking blocks; version 1 is the
// rules Guild started with. Every block header carries the version its block was made under, and
// the version in force at a height is state: governance schedules an upgrade (a name, the version
// it brings, which must be the next one, and the height it takes effect at), and from that height
// on every block is made and checked under the new version. Rules that differ between versions
// are keyed by the version of the block being executed (BlockInfo.Version), never by what the
// binary supports, so a binary that supports version 2 still executes the blocks made before the
// upgrade under version 1 and gets the same state as everyone did then.
//
// A binary supports versions 1..SupportedVersion (see version_*.go: a build tag adds the next
// one). State refuses to execute a block of a version this binary does not support
// (ErrUnsupportedVersion): a node must stop before such a height, not half-apply it.

const (
	// InitialVersion is the protocol version of a chain no upgrade has changed, and what a block
	// header without a version (one made before headers carried it) reads as.
	InitialVersion uint32 = 1
	// MinUpgradeDelay: an upgrade passed in block h takes effect at a height of at least
	// h+MinUpgradeDelay, so that operators see it scheduled before it binds, and so that no block
	// is judged by a version decided in that same block.
	MinUpgradeDelay = 10
	// MaxUpgradeInfoLen bounds an upgrade's free-text info (a release URL or a checksum, say).
	MaxUpgradeInfoLen = 256
	// MaxBallotOptionsV2 is the most options a ballot may have from protocol version 2 on: the
	// one rule that version 2 changes, kept small on purpose so that the upgrade machinery has a
	// real, observable change to carry (docs/operations.md, "Rolling upgrades").
	MaxBallotOptionsV2 = 32
)

var (
	// ErrUnsupportedVersion refuses to execute a block whose protocol version this binary does
	// not support.
	ErrUnsupportedVersion = errors.New("state: protocol version not supported by this binary")
	// ErrWrongVersion refuses to execute a block whose version is not the one in force at its
	// height.
	ErrWrongVersion = errors.New("state: block protocol version is not the one in force")
)

// Upgrade is a protocol upgrade scheduled by governance: from block Height on, blocks are made
// and executed under protocol Version.
type Upgrade struct {
	Name    string `cbor:"1,keyasint" json:"name"`
	Height  uint64 `cbor:"2,keyasint" json:"height"`
	Version uint32 `cbor:"3,keyasint" json:"version"`
	Info    string `cbor:"4,keyasint,omitempty" json:"info,omitempty"`
	// Proposal is the ID of the proposal that scheduled it; set when it passes.
	Proposal string `cbor:"5,keyasint,omitempty" json:"proposal,omitempty"`
}

// Version returns the block's protocol version, reading 0 (a block made before headers carried
// one) as InitialVersion.
func (b BlockInfo) version() uint32 {
	if b.Version == 0 {
		return InitialVersion
	}
	return b.Version
}

// VersionAt is the protocol version in force at height h under the upgrades us (in the order
// they were scheduled): that of the last one taking effect at or below h.
func VersionAt(us []Upgrade, h uint64) uint32 {
	v := InitialVersion
	for _, u := range us {
		if u.Height <= h && u.Version > v {
			v = u.Version
		}
	}
	return v
}

// pendingUpgrade is the upgrade of us that takes effect after height h, if one is scheduled.
func pendingUpgrade(us []Upgrade, h uint64) (Upgrade, bool) {
	for _, u := range us {
		if u.Height > h {
			return u, true
		}
	}
	return Upgrade{}, false
}

// latestVersion is the version of the last upgrade scheduled, active or not.
func latestVersion(us []Upgrade) uint32 {
	v := InitialVersion
	for _, u := range us {
		v = max(v, u.Version)
	}
	return v
}

// maxBallotOptions is the ballot option limit of protocol version v.
func maxBallotOptions(v uint32) int {
	if v >= 2 {
		return MaxBallotOptionsV2
	}
	return MaxBallotOptions
}

// checkUpgrade: a well-formed upgrade to the next version, at least MinUpgradeDelay blocks after
// block h, with no other upgrade pending and no name used before.
func (g *govState) checkUpgrade(u *Upgrade, h uint64) error {
	if !validName(u.Name) {
		return fmt.Errorf("%w: upgrade name %q", ErrBadField, u.Name)
	}
	if len(u.Info) > MaxUpgradeInfoLen || !utf8.ValidString(u.Info) || slices.ContainsFunc([]rune(u.Info), func(r rune) bool { return !unicode.IsPrint(r) }) {
		return fmt.Errorf("%w: upgrade info must be at most %d bytes of printable UTF-8", ErrBadField, MaxUpgradeInfoLen)
	}
	if slices.ContainsFunc(g.Upgrades, func(o Upgrade) bool { return o.Name == u.Name }) {
		return fmt.Errorf("%w: upgrade %q", ErrExists, u.Name)
	}
	if p, ok := pendingUpgrade(g.Upgrades, h); ok {
		return fmt.Errorf("%w: upgrade %q is already scheduled at height %d; cancel it first", ErrExists, p.Name, p.Height)
	}
	if want := latestVersion(g.Upgrades) + 1; u.Version != want {
		return fmt.Errorf("%w: upgrade to version %d, the next version is %d", ErrBadField, u.Version, want)
	}
	if u.Height < h+MinUpgradeDelay {
		return fmt.Errorf("%w: upgrade at %d, earliest is %d", ErrBadHeight, u.Height, h+MinUpgradeDelay)
	}
	return nil
}

// checkCancel: the upgrade named is scheduled and not yet in force at block h.
func (g *govState) checkCancel(name string, h uint64) (int, error) {
	i := slices.IndexFunc(g.Upgrades, func(u Upgrade) bool { return u.Name == name })
	switch {
	case i < 0:
		return -1, fmt.Errorf("%w: upgrade %q", ErrUnknown, name)
	case g.Upgrades[i].Height <= h:
		return -1, fmt.Errorf("%w: upgrade %q took effect at height %d", ErrBadHeight, name, g.Upgrades[i].Height)
	}
	return i, nil
}

// checkVersion refuses a block whose version is not the one in force at its height, or not one
// this binary supports. It runs before any transaction, so a refused block changed nothing.
func (ov *overlay) checkVersion() error {
	// The committed record, as the memo holds it decoded: nothing of the block has run yet, and
	// this only reads. (ov.gov decodes a copy to change: a decoding per block, issue #10.)
	e, err := ov.s.govEntry()
	if err != nil {
		ov.err = err
		return err
	}
	if e.raw == nil {
		return fmt.Errorf("%w: no governance record", ErrCorrupt)
	}
	v, want := ov.blk.version(), VersionAt(e.g.Upgrades, ov.blk.Height)
	if v != want {
		return fmt.Errorf("%w: block %d has version %d, version %d is in force", ErrWrongVersion, ov.blk.Height, v, want)
	}
	if v > SupportedVersion {
		return fmt.Errorf("%w: block %d has version %d, this binary supports up to %d", ErrUnsupportedVersion, ov.blk.Height, v, SupportedVersion)
	}
	return nil
}

// Upgrades returns every upgrade scheduled, those in force included, in the order they were
// scheduled (a cancelled one is gone; its proposal stays).
func (s *State) Upgrades() ([]Upgrade, error) {
	g, err := s.gov()
	if err != nil {
		return nil, err
	}
	return slices.Clone(g.Upgrades), nil
}

// VersionAt is the protocol version in force at height h as scheduled so far. That of the next
// block, Height()+1, is final: an upgrade or a cancellation passed in that block takes effect
// after it.
func (s *State) VersionAt(h uint64) (uint32, error) {
	us, err := s.Upgrades()
	return VersionAt(us, h), err
}
