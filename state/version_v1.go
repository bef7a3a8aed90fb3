//go:build !guild_v2

package state

// SupportedVersion is the newest protocol version this binary can execute. The default build
// supports version 1 only; a build with -tags guild_v2 supports version 2 (version_v2.go).
const SupportedVersion uint32 = 1
