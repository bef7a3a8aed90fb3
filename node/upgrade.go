package node

import (
	"errors"
	"fmt"

	"github.com/guild-ledger/guild/state"
)

// Rolling upgrades (issue #13). Every header carries the protocol version it was made under
// (Header.Version); the version in force at a height is state, scheduled by governance
// (state/upgrade.go). A leader writes the version in force into its proposal and every validator
// refuses a proposal of another version (checkHeader). A node whose binary does not support the
// version in force at the next height stops right after committing the block before it — it
// has not entered that height, so it has signed nothing there and executed nothing of it — and
// refuses to start again until its binary does (ErrUpgradeRequired, exit code
// ExitUpgradeRequired). Operators install the new binary, one node at a time, before the
// activation height; a binary that supports the new version executes the heights before it under
// the old rules, since rules follow the block's version.

// ExitUpgradeRequired is the exit code of `guild node start` when the node stopped, or would not
// start, because the protocol version in force at its next height is newer than its binary
// supports. Restarting the same binary cannot help: a supervisor should alert, not loop.
const ExitUpgradeRequired = 3

// ErrUpgradeRequired is what an *UpgradeRequiredError matches with errors.Is.
var ErrUpgradeRequired = errors.New("node: protocol upgrade required")

// UpgradeRequiredError says which upgrade this binary cannot follow, and what to do.
type UpgradeRequiredError struct {
	Upgrade   state.Upgrade // the upgrade in force at Height
	Height    uint64        // the height the node stopped before
	Supported uint32        // the newest version this binary supports
}

func (e *UpgradeRequiredError) Error() string {
	info := ""
	if e.Upgrade.Info != "" {
		info = " (" + e.Upgrade.Info + ")"
	}
	return fmt.Sprintf("upgrade %q%s activates protocol version %d at height %d, and this binary supports "+
		"protocol versions up to %d: the node stopped before executing height %d and signed nothing there; "+
		"install a binary that supports protocol version %d and restart",
		e.Upgrade.Name, info, e.Upgrade.Version, e.Upgrade.Height, e.Supported, e.Height, e.Upgrade.Version)
}

func (e *UpgradeRequiredError) Is(target error) bool { return target == ErrUpgradeRequired }

// ProtocolVersion returns the header's protocol version, reading 0 (a header made by a binary that
// predates the field) as state.InitialVersion.
func (h *Header) ProtocolVersion() uint32 {
	if h.Version == 0 {
		return state.InitialVersion
	}
	return h.Version
}

// upgradeCheck reads the upgrade schedule after a block was applied (or at start) and says
// whether this binary can go on to height next: an *UpgradeRequiredError if the version in force
// there is newer than it supports. It keeps n.upgrades (the loop's copy) and the metrics current,
// and warns, once per schedule, about a pending upgrade this binary will not be able to follow.
func (n *Node) upgradeCheck(next uint64) error {
	us, err := n.st.Upgrades()
	if err != nil {
		return fmt.Errorf("node: reading the upgrade schedule: %w", err)
	}
	n.upgrades = us
	v := state.VersionAt(us, next)
	n.metrics.protocolVersion.Set(float64(v))
	n.noteActivation(us, next, state.SupportedVersion)
	pending := uint64(0)
	for _, u := range us {
		if u.Height > next {
			pending = u.Height
			if u.Version > state.SupportedVersion && n.warnedUpgrade != u.Name {
				n.warnedUpgrade = u.Name
				n.log.Warn("a protocol upgrade is scheduled that this binary does not support: install a binary "+
					"that supports it before the activation height, or this node stops there",
					"upgrade", u.Name, "height", u.Height, "version", u.Version, "supported", state.SupportedVersion, "info", u.Info)
			}
		}
	}
	n.metrics.upgradeHeight.Set(float64(pending))
	if v <= state.SupportedVersion {
		return nil
	}
	e := &UpgradeRequiredError{Height: next, Supported: state.SupportedVersion}
	for _, u := range us {
		if u.Height <= next && u.Version > state.SupportedVersion {
			e.Upgrade = u
			break
		}
	}
	n.metrics.upgradeRequired.Set(1)
	n.health.upgradeRequired.Store(true)
	return e
}

// noteActivation logs, once, the upgrade that takes effect at height next when this binary
// (supporting versions up to supported) follows it: the line operators look for to know that
// the new rules bind from there (guild_protocol_version says the same as a number). One it
// cannot follow is the UpgradeRequiredError instead.
func (n *Node) noteActivation(us []state.Upgrade, next uint64, supported uint32) {
	for _, u := range us {
		if u.Height != next || u.Version > supported || n.activatedUpgrade == u.Name {
			continue
		}
		n.activatedUpgrade = u.Name
		n.log.Info(fmt.Sprintf("upgrade %s activated at height %d, protocol version %d", u.Name, u.Height, u.Version),
			"upgrade", u.Name, "height", u.Height, "version", u.Version, "info", u.Info)
	}
}

// versionAt is the protocol version in force at height as the loop last read the schedule:
// final for the next height. Loop only.
func (n *Node) versionAt(height uint64) uint32 { return state.VersionAt(n.upgrades, height) }
