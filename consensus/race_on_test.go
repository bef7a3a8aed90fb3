//go:build race

package consensus

// raceEnabled scales the simulator down under -race, where ed25519 runs about seven times slower.
const raceEnabled = true
