package node

import "github.com/guild-ledger/guild/state"

// JSON shapes of the HTTP API, shared by the server and the Client. Keys are lower-case; hashes,
// addresses and transaction bytes are strings (hex).

// Tx statuses reported by GET /v1/txs/{hash}.
const (
	TxPending   = "pending"
	TxCommitted = "committed"
	TxRejected  = "rejected"
	TxUnknown   = "unknown"
)

// SubmitTxRequest is the body of POST /v1/txs: the encoded signed transaction in hex.
type SubmitTxRequest struct {
	Tx string `json:"tx"`
}

// SubmitTxResponse answers POST /v1/txs (202 Accepted: in the mempool, not yet final).
type SubmitTxResponse struct {
	Hash   string `json:"hash"`
	Status string `json:"status"`
}

// TxBusy is the per-transaction status in a batch answer for a transaction the node could not take
// now (mempool full): submit it again later.
const TxBusy = "busy"

// MaxSubmitBatch is the most transactions one POST /v1/txs/batch may carry.
const MaxSubmitBatch = 1024

// SubmitTxsRequest is the body of POST /v1/txs/batch: encoded signed transactions in hex.
type SubmitTxsRequest struct {
	Txs []string `json:"txs"`
}

// SubmitTxResult is one transaction's outcome in a batch: pending, rejected (with error), or busy.
type SubmitTxResult struct {
	Hash   string `json:"hash,omitempty"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// SubmitTxsResponse answers POST /v1/txs/batch, one result per transaction, in order.
type SubmitTxsResponse struct {
	Results []SubmitTxResult `json:"results"`
}

// TxStatus answers GET /v1/txs/{hash}.
type TxStatus struct {
	Hash   string `json:"hash"`
	Status string `json:"status"`
	Height uint64 `json:"height,omitempty"`
	Index  int    `json:"index,omitempty"`
	Error  string `json:"error,omitempty"`
}

// AccountResponse answers GET /v1/accounts/{address}: the native balance and nonce, nonzero
// asset balances by symbol, the signatories of a multi-signature account, and the consortium
// member it is the controller of, if any.
type AccountResponse struct {
	Address string               `json:"address"`
	Balance uint64               `json:"balance"`
	Nonce   uint64               `json:"nonce"`
	Assets  []state.AssetBalance `json:"assets,omitempty"`
	Signers *SignersJSON         `json:"signers,omitempty"`
	Member  string               `json:"member,omitempty"`
}

// HeaderJSON is a block header as the API shows it.
type HeaderJSON struct {
	ChainID   string `json:"chain_id"`
	Height    uint64 `json:"height"`
	Time      string `json:"time"`
	PrevHash  string `json:"prev_hash"`
	StateRoot string `json:"state_root"`
	TxsHash   string `json:"txs_hash"`
	Proposer  uint32 `json:"proposer"`
}

// VoteJSON is one signature of a certificate.
type VoteJSON struct {
	Validator uint32 `json:"validator"`
	Sig       string `json:"sig"`
}

// CertificateJSON is a commit certificate.
type CertificateJSON struct {
	Height uint64     `json:"height"`
	View   uint64     `json:"view"`
	Digest string     `json:"digest"`
	Votes  []VoteJSON `json:"votes"`
}

// TxResultJSON says what execution did with one transaction of a block.
type TxResultJSON struct {
	Hash  string `json:"hash"`
	Error string `json:"error,omitempty"`
}

// BlockResponse answers GET /v1/blocks/{height}.
type BlockResponse struct {
	Height      uint64          `json:"height"`
	Hash        string          `json:"hash"`
	Header      HeaderJSON      `json:"header"`
	Txs         []string        `json:"txs"`
	Results     []TxResultJSON  `json:"results"`
	Certificate CertificateJSON `json:"certificate"`
}

// StatusResponse answers GET /v1/status.
type StatusResponse struct {
	ChainID       string `json:"chain_id"`
	Moniker       string `json:"moniker"`
	Height        uint64 `json:"height"` // last committed height
	LastBlockHash string `json:"last_block_hash"`
	Peers         int    `json:"peers"`
	Validator     bool   `json:"validator"`
	ValidatorIdx  int    `json:"validator_index"` // -1 when not a validator
	View          uint64 `json:"view"`
	Leader        uint32 `json:"leader"` // validator index leading the height being decided
	PeerID        string `json:"peer_id"`
	MempoolSize   int    `json:"mempool_size"`
}

// ErrorResponse is the body of every 4xx and 5xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}
