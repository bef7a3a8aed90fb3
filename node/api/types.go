package api

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
	Code   string `json:"code,omitempty"` // with Error: why, as an error answer's code
}

// SubmitTxsResponse answers POST /v1/txs/batch, one result per transaction, in order.
type SubmitTxsResponse struct {
	Results []SubmitTxResult `json:"results"`
}

// TxStatus answers GET /v1/txs/{hash}. For a transaction in a block (Height > 0), Result says
// what execution did (committed, or failed with Error), and Time, From, Op and Accounts (what it
// touches, as in the event stream) describe it.
type TxStatus struct {
	Hash   string `json:"hash"`
	Status string `json:"status"`
	Height uint64 `json:"height,omitempty"`
	Index  int    `json:"index,omitempty"`
	Error  string `json:"error,omitempty"`
	// Code is set with the 404 of an unknown transaction, so that the answer has the keys of
	// every error answer (see ErrorResponse).
	Code     string   `json:"code,omitempty"`
	Result   string   `json:"result,omitempty"` // committed or failed (api.EventTx*)
	Time     string   `json:"time,omitempty"`   // the block's time, RFC 3339
	From     string   `json:"from,omitempty"`
	Op       string   `json:"op,omitempty"`
	Accounts []string `json:"accounts,omitempty"`
}

// AccountResponse answers GET /v1/accounts/{address}: the native balance and nonce, nonzero
// asset balances by symbol, the signatories of a multi-signature account, and the consortium
// member it is the controller of, if any.
type AccountResponse struct {
	Address string `json:"address"`
	Balance uint64 `json:"balance"`
	Nonce   uint64 `json:"nonce"`
	// NextNonce is the nonce to sign the account's next transaction with: its committed nonce
	// plus the transactions from it pending on this node, in an unbroken run.
	NextNonce uint64         `json:"next_nonce"`
	Assets    []AssetBalance `json:"assets,omitempty"`
	Signers   *SignersJSON   `json:"signers,omitempty"`
	Member    string         `json:"member,omitempty"`
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
	// EvidenceHash is empty when the block carries no evidence.
	EvidenceHash string `json:"evidence_hash,omitempty"`
	// Leader is the validator scheduled to lead the height; when it is not Proposer, it missed
	// its turn. LeaderSkips is the skip table in force at the height.
	Leader      uint32           `json:"leader"`
	LeaderSkips []LeaderSkipJSON `json:"leader_skips,omitempty"`
	// Version is the protocol version the block was made under (1 for a header made before
	// headers carried one).
	Version uint32 `json:"version"`
	// ReceiptsRoot is the root over the previous block's receipts; empty when it had no
	// transactions.
	ReceiptsRoot string `json:"receipts_root,omitempty"`
}

// LeaderSkipJSON is a validator passed over as leader, or on probation after that.
type LeaderSkipJSON struct {
	Validator uint32 `json:"validator"`
	Until     string `json:"until"` // block time after which it is given its turns back
	Misses    uint32 `json:"misses"`
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

// Values of GET /v1/blocks/{height}?txs=: full (the default) lists each transaction, encoded, in
// txs; none leaves txs empty, for followers that need only which transactions committed (the
// results name each by hash): a fifth of the bytes to write and read.
const (
	BlockTxsFull = "full"
	BlockTxsNone = "none"
)

// BlockResponse answers GET /v1/blocks/{height}.
type BlockResponse struct {
	Height      uint64          `json:"height"`
	Hash        string          `json:"hash"`
	Header      HeaderJSON      `json:"header"`
	Txs         []string        `json:"txs"`
	Results     []TxResultJSON  `json:"results"`
	Certificate CertificateJSON `json:"certificate"`
	Evidence    []EvidenceJSON  `json:"evidence,omitempty"`
}

// EvidenceJSON is one piece of committed evidence of equivocation: validator ValidatorIndex
// (Validator by its genesis name, PubKey its consensus key in hex) signed two different Digests
// for one (Height, View, Type). Included is the height of the block that put it on record.
type EvidenceJSON struct {
	ID             string    `json:"id"`
	Validator      string    `json:"validator"`
	ValidatorIndex uint32    `json:"validator_index"`
	PubKey         string    `json:"pub_key"`
	Height         uint64    `json:"height"`
	View           uint64    `json:"view"`
	Type           string    `json:"type"`
	Digests        [2]string `json:"digests"`
	Included       uint64    `json:"included_height"`
}

// Evidence statuses reported by POST /v1/evidence.
const (
	EvidencePending = "pending" // verified, pooled and gossiped: the next leader puts it on chain
	EvidenceKnown   = "known"   // pending already, or on chain
)

// SubmitEvidenceRequest is the body of POST /v1/evidence: an encoded consensus.Evidence in hex.
type SubmitEvidenceRequest struct {
	Evidence string `json:"evidence"`
}

// SubmitEvidenceResponse answers POST /v1/evidence.
type SubmitEvidenceResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// MaxEvidenceList is the most pieces of evidence GET /v1/evidence returns.
const MaxEvidenceList = 1000

// EvidenceListResponse answers GET /v1/evidence: committed evidence in the order of the
// offences (height, view, type, validator), at most MaxEvidenceList.
type EvidenceListResponse struct {
	Evidence []EvidenceJSON `json:"evidence"`
}

// OffenceJSON is a signed proposal this node refused because a transaction in it would fail: what
// a correct leader leaves out. Validator (ValidatorIndex in the set of Height) signed Message, the
// hex of its encoded consensus PrePrepare with the block, for (Height, View); anyone holding the
// chain up to Height-1 can check the signature and execute the block to see Reason again. Seen is
// when this node refused it (RFC 3339).
type OffenceJSON struct {
	Validator      string `json:"validator"`
	ValidatorIndex uint32 `json:"validator_index"`
	Height         uint64 `json:"height"`
	View           uint64 `json:"view"`
	Digest         string `json:"digest"`
	Reason         string `json:"reason"`
	Message        string `json:"message"`
	Seen           string `json:"seen"`
}

// OffencesResponse answers GET /v1/offences: the last invalid proposals this node refused, oldest
// first (at most 64; kept in memory, not across restarts).
type OffencesResponse struct {
	Offences []OffenceJSON `json:"offences"`
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
	// LeaderName is that validator's name in the set of the height (which governance changes).
	LeaderName string `json:"leader_name,omitempty"`
	// LeadersSkipped are the validators passed over as leader at that height for having missed
	// a turn recently.
	LeadersSkipped []uint32 `json:"leaders_skipped,omitempty"`
	PeerID         string   `json:"peer_id"`
	// P2PAddrs are the node's full p2p multiaddrs, each ending in /p2p/<peer_id>.
	P2PAddrs    []string `json:"p2p_addrs"`
	MempoolSize int      `json:"mempool_size"`
	// LastBlockTimeMs is when this node applied its last block (unix ms; 0 for none since it
	// started), and LastBlockHeaderMs that block's header time.
	LastBlockTimeMs   int64 `json:"last_block_time_ms"`
	LastBlockHeaderMs int64 `json:"last_block_header_time_ms"`
	// CatchingUp: block sync is fetching blocks because peers are ahead.
	CatchingUp bool `json:"catching_up"`
	// Stalled: no block finalized for longer than consensus.stall_warn_ms (the log says why).
	Stalled bool `json:"stalled"`
	// EarliestHeight is the first block this node holds and serves: 1, or later on a node that
	// joined by state sync or prunes old blocks.
	EarliestHeight uint64 `json:"earliest_height"`
}

// HealthResponse answers GET /healthz (and /health): is the process alive and its loop responsive.
type HealthResponse struct {
	Status string `json:"status"` // "ok" or "unresponsive"
	Error  string `json:"error,omitempty"`
	Code   string `json:"code,omitempty"` // with "unresponsive": unavailable
}

// ReadyResponse answers GET /readyz: 200 when ready, 503 with the reasons when not.
type ReadyResponse struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"`
}

// Peer roles in GET /v1/peers.
const (
	PeerValidator = "validator" // bound to a validator by genesis; Name is the validator's
	PeerObserver  = "observer"  // a configured observer
	PeerOther     = "peer"      // admitted because the node is not permissioned
)

// PeerStatus is one connected peer in GET /v1/peers.
type PeerStatus struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"` // the addresses it listens on, or the connection's
	// LatencyMs is the moving average of ping round trips; 0 until measured.
	LatencyMs float64 `json:"latency_ms"`
	// Score is the peer's gossipsub score (below -400 it is disconnected); absent until scored.
	Score *float64 `json:"score,omitempty"`
	Role  string   `json:"role"`
	Name  string   `json:"name,omitempty"`
}

// PeersResponse answers GET /v1/peers, peers sorted by ID.
type PeersResponse struct {
	Peers []PeerStatus `json:"peers"`
}
