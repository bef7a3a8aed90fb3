package node

// MaxBlockTxsLimit is the most transactions a block may hold, whatever the config says; decoders
// use it to bound allocation.
const MaxBlockTxsLimit = 50000
