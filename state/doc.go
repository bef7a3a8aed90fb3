// Package state is Guild's replicated state machine: accounts, signed transactions, and the
// execution of committed blocks against a kv.Store.
//
// It is deterministic: the same block applied to the same state gives the same bytes, results
// and root on every machine. It reads no clock, draws no randomness (batch signature
// verification derives its coefficients from a hash of the batch) and touches no network. It
// does use goroutines, to hash, decode, verify and read accounts in parallel, but every result is
// collected by index and the transactions themselves are applied strictly in block order.
//
// # Signatures
//
// Every transaction signature check, single (VerifyTx) or batched (VerifyTxs, and ApplyBlock
// through it), uses curve25519-voi's ed25519 with ZIP-215 rules, the rules batch verification
// implements, so that no two validators can disagree on a signature because one checked it in a
// batch. Signing may use crypto/ed25519 (the signatures are the same); verifying transactions
// with it must not happen anywhere in the project.
//
// # Storage and the state root
//
// State entries are "a/"+address → CBOR(Account); "m/" keys hold the chain ID, height and root.
// A block's writes, height and root are committed in one synchronous batch. The root is a hash
// chain over each block's sorted write set (see root.go): it commits to the whole state given
// genesis, but it cannot prove a single account; inclusion proofs need a Merkle tree over the
// state, which is future work.
package state
