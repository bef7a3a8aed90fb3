//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package wallet

// lockFile is a no-op where flock is not available: concurrent commands on one wallet may then
// pick the same nonce, and the node refuses the second with a reason.
func lockFile(string) (func(), error) { return func() {}, nil }
