//go:build guild_v2

package state

// SupportedVersion is the newest protocol version this binary can execute: built with -tags
// guild_v2, it supports version 2, whose one rule change is MaxBallotOptionsV2.
const SupportedVersion uint32 = 2
