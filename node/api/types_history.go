package api

// JSON shapes of the history and list endpoints.

// History and list page sizes.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// AccountTxJSON is one transaction in an account's history: the fields of a tx event (see
// TxEventJSON: status committed or failed, the accounts it touches) and its block's time.
type AccountTxJSON struct {
	TxEventJSON
	Time string `json:"time"` // block time, RFC 3339
}

// AccountTxsResponse answers GET /v1/accounts/{address}/txs: the transactions touching the
// account, newest first. NextCursor, absent on the last page, is the ?cursor= of the next page
// (opaque); paging with it neither repeats nor skips a transaction while blocks are added.
// Height is the last block the page looked at.
type AccountTxsResponse struct {
	Address    string          `json:"address"`
	Height     uint64          `json:"height"`
	Txs        []AccountTxJSON `json:"txs"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

// BlockHeaderJSON is a block without its transactions: hash, header and counts.
type BlockHeaderJSON struct {
	Height   uint64     `json:"height"`
	Hash     string     `json:"hash"`
	Header   HeaderJSON `json:"header"`
	Txs      int        `json:"txs"`
	Evidence int        `json:"evidence"`
}

// BlocksResponse answers GET /v1/blocks: block headers from ?from= on, ascending (or, with
// ?order=desc, descending). NextFrom is the ?from= of the next page (absent when a descending
// list reached block 1); Height is the last committed block.
type BlocksResponse struct {
	Blocks   []BlockHeaderJSON `json:"blocks"`
	Height   uint64            `json:"height"`
	NextFrom uint64            `json:"next_from,omitempty"`
}
