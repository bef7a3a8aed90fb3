// Package state is Guild's replicated state machine: accounts, signed transactions, and the
// execution of committed blocks against a kv.Store.
//
// # What the state holds
//
// Accounts (native balance, nonce, and optionally a multi-signature signer set), fungible assets
// and their balances, unique items with their provenance, identities and the claims issued about
// them, notarized document hashes, escrows, ballots, and the consortium's own governance:
// members, the validator schedule and parameters (issue 4). Each is changed only by one
// operation kind of a signed transaction (ops.go lists them with every check they make) and read
// by the queries of query.go. One file per concern applies its operations: multisig.go,
// asset.go, item.go, notary.go, escrow.go, identity.go (with claims), ballot.go, gov.go.
//
// A transaction carries exactly one operation. A rejected transaction changes nothing, not even
// its sender's nonce: transfers check everything before writing, and every other operation
// writes through a journal that is rolled back if it fails (overlay.go). Plain transfers, most
// of the load, keep their own path: accounts prefetched in parallel, no journal, no records.
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
// State entries are "a/"+address → CBOR(Account) and the "r/" records of overlay.go; "m/" keys
// hold the chain ID, height, root and the last block's time.
// State entries are also the leaves of the state tree, whose nodes live under "t/" (tree.go): a
// block's writes, tree nodes, height and root are committed in one synchronous batch. The root
// is that tree's root (root.go, package merkle): it commits to every entry, and Prove gives a
// path that shows one entry's value, or its absence, against it.
package state
