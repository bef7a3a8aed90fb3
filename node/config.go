package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/guild-ledger/guild/state"
)

// Files and folders inside a node's home directory.
const (
	ConfigFile       = "config.toml"
	GenesisFile      = "genesis.json"
	NodeKeyFile      = "node_key.json"
	ValidatorKeyFile = "validator_key.json"
	DataDir          = "data"
	WALFile          = "consensus.wal" // inside DataDir
	// PeerBookFile remembers the addresses of member peers across restarts (inside DataDir).
	PeerBookFile = "p2p_peers.json"
)

// Config is a node's config.toml. Every field has a documented default (DefaultConfig), so an
// operator writes only what differs.
type Config struct {
	// Moniker names this node in logs and status output.
	Moniker string `toml:"moniker"`
	// MemoryLimitMB, when positive, is a soft limit on the memory the Go runtime holds (heap,
	// stacks, its own; not the storage engine's memtables and cache), as GOMEMLIMIT: nearing it,
	// the collector runs earlier and returns freed memory to the system sooner. 0 leaves the
	// runtime's default (GOMEMLIMIT if set, else none). The limit is soft: a live heap above it
	// costs collector CPU (at most about half), never a crash.
	MemoryLimitMB int             `toml:"memory_limit_mb"`
	P2P           P2PConfig       `toml:"p2p"`
	API           APIConfig       `toml:"api"`
	Storage       StorageConfig   `toml:"storage"`
	Consensus     ConsensusConfig `toml:"consensus"`
	Mempool       MempoolConfig   `toml:"mempool"`
	Log           LogConfig       `toml:"log"`
	Admin         AdminConfig     `toml:"admin"`
	Private       PrivateConfig   `toml:"private"`
	StateSync     StateSyncConfig `toml:"statesync"`
}

// PrivateConfig is about private payloads between named members (issue 14): see docs/private.md.
type PrivateConfig struct {
	// Member is the consortium member whose private payloads this node holds and serves; empty:
	// the member named like the validator bound to this node's peer ID (the usual case).
	Member string `toml:"member"`
	// MaxBytes bounds one ciphertext this node accepts, by API or stream (at most the chain's
	// limit, 1 MiB). Keep it alike on every member's node: a payload over a recipient's limit
	// never reaches it.
	MaxBytes int `toml:"max_bytes"`
	// RequestsPerSec bounds the private stream requests (pushes and fetches) one peer may make of
	// this node per second, in bursts of twice that; more are answered "busy".
	RequestsPerSec float64 `toml:"requests_per_sec"`
}

// StateSyncConfig is state snapshots (taken and served to peers) and joining by state sync.
type StateSyncConfig struct {
	// SnapshotInterval: take a snapshot of the state after every block whose height is a
	// multiple of this, and serve it to joining peers. 0 turns snapshots off.
	SnapshotInterval uint64 `toml:"snapshot_interval"`
	// SnapshotKeep is how many snapshots are kept on disk (the oldest are removed).
	SnapshotKeep int `toml:"snapshot_keep"`
	// ChunkBytes is the size snapshots are cut into chunks at. Nodes of one chain should agree on
	// it: a joining node fetches a snapshot's chunks only from peers offering the same manifest.
	ChunkBytes int `toml:"chunk_bytes"`
	// Enable: on start with no state (a new or wiped home), join by state sync (as
	// `guild node start --state-sync`): fetch the latest certified snapshot from peers, then
	// block-sync only the rest. A home that holds state starts as usual.
	Enable bool `toml:"enable"`
	// DiscoveryMillis is how long state sync waits for peers' offers before choosing one.
	DiscoveryMillis int `toml:"discovery_ms"`
}

type P2PConfig struct {
	// Listen holds multiaddrs to listen on: TCP (/tcp/PORT) and QUIC (/udp/PORT/quic-v1). Peers
	// dial TCP first and QUIC only if TCP has not connected within a second: a dead process's
	// TCP connections close at once, which consensus uses to give a crashed leader up early,
	// while a QUIC connection to it lingers for its 30 s idle timeout.
	Listen []string `toml:"listen"`
	// Announce, when set, holds the multiaddrs peers are told to reach this node at, instead of
	// the listen addresses (e.g. a public address in front of a NAT).
	Announce []string `toml:"announce"`
	// Bootstrap holds full multiaddrs (ending in /p2p/<peer id>) of peers to dial and keep dialing.
	Bootstrap []string `toml:"bootstrap"`
	// Permissioned admits only the peers bound to the validators of now and of the future (the
	// validator schedule in state, which genesis starts and governance changes), and Observers.
	Permissioned bool `toml:"permissioned"`
	// Observers are peer IDs of non-validating nodes also admitted when permissioned.
	Observers []string `toml:"observers"`
	// MDNS finds peers on the local network (or machine) by multicast DNS.
	MDNS bool `toml:"mdns"`
	// DHT looks members up by peer ID in a Kademlia DHT private to the chain, so that knowing one
	// member's address is enough to find the others.
	DHT bool `toml:"dht"`
	// ConsensusMsgsPerSec bounds the consensus messages each author (validator) may send this
	// node per second, in bursts of twice that; the excess is dropped before it is verified, and
	// a peer that keeps exceeding it with its own messages is disconnected. 0: the default (500).
	// An honest validator sends a few messages per height, so keep it above 4 × blocks per second.
	ConsensusMsgsPerSec float64 `toml:"consensus_msgs_per_sec"`
}

type APIConfig struct {
	// Listen is the HTTP API's address; loopback by default, since the API is not authenticated.
	Listen string `toml:"listen"`
	// Pprof serves Go's profiler under /debug/pprof/ on the API address (with admin.listen set,
	// the profiler is on the admin listener instead, whatever this says).
	Pprof bool `toml:"pprof"`
	// MaxEventSubscribers caps the streams of GET /v1/events served at once; one more is
	// answered 503. Each costs a goroutine and, while it reads, one decoded block.
	MaxEventSubscribers int `toml:"max_event_subscribers"`
	// EventsKeepaliveMillis: a stream with nothing to send gets an SSE comment this often, so that
	// proxies keep it open and the subscriber knows the node is alive.
	EventsKeepaliveMillis int `toml:"events_keepalive_ms"`
	// EventsWriteTimeoutMillis: an event subscriber that takes nothing for this long (its
	// connection's buffers full) is cut off, freeing its slot; it resumes from its last event ID.
	EventsWriteTimeoutMillis int `toml:"events_write_timeout_ms"`
	// ReadTimeoutMillis bounds reading a whole request, body included, so that a client sending a
	// byte now and then cannot hold a connection (and its memory) for ever.
	ReadTimeoutMillis int `toml:"read_timeout_ms"`
	// WriteTimeoutMillis bounds writing an answer. Keep it above 30000: GET /v1/blocks/{h}?wait=MS
	// holds a request up to 30 s. The event stream sets its own deadline per event.
	WriteTimeoutMillis int `toml:"write_timeout_ms"`
	// IdleTimeoutMillis closes a kept-alive connection with no request for this long.
	IdleTimeoutMillis int `toml:"idle_timeout_ms"`
	// MaxConnections caps the API's open connections; more wait to be accepted.
	MaxConnections int `toml:"max_connections"`
	// CORSOrigins lists the origins (scheme://host[:port]) whose web pages may call the API from a
	// browser, or "*" for any; empty: none (browsers refuse cross-origin calls).
	CORSOrigins []string `toml:"cors_origins"`
	// TLSCertFile and TLSKeyFile (PEM), both set, serve the API over HTTPS.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
}

// AdminConfig is the operator's listener, apart from the API that clients use.
type AdminConfig struct {
	// Listen, when set (host:port), serves the operator endpoints there and no longer on the API:
	// Go's profiler under /debug/pprof/ and POST /v1/evidence, and (only there) POST
	// /v1/admin/checkpoint, which `guild node backup` uses on a running node. Off by default; keep it on loopback
	// (the node warns otherwise): nothing on it is authenticated.
	Listen string `toml:"listen"`
}

type StorageConfig struct {
	// Backend is pebbledb (default), goleveldb or memdb (nothing on disk; for tests).
	Backend string `toml:"backend"`
	// MinFreeMB: with less free space than this on the data directory's filesystem the node
	// warns; below a critical level (100 MB, or this if lower) it logs errors and is not ready.
	// 0 turns the check off.
	MinFreeMB int `toml:"min_free_mb"`
	// KeepBlocks, when positive, keeps only the last KeepBlocks blocks (and their results and
	// transaction index) in the block store; older ones are deleted, never those the snapshots
	// kept need. 0 keeps every block.
	KeepBlocks uint64 `toml:"keep_blocks"`
}

type ConsensusConfig struct {
	// TickMillis is the period of the consensus clock; timeouts count in ticks.
	TickMillis int `toml:"tick_ms"`
	// RetransmitTicks: after this many ticks without progress at a height, resend own messages.
	RetransmitTicks int `toml:"retransmit_ticks"`
	// The next three are the consortium's parameters, set in genesis and changed by governance
	// (state.ParamViewTimeoutMs, ParamEmptyBlockMs, ParamMaxBlockTxs). 0 follows the consortium;
	// another value overrides it on this node only (for tests and experiments; a block holding
	// more transactions than the consortium's max_block_txs is invalid whatever this says).
	//
	// ViewTimeoutMillis: a validator that sees no commit for this long starts a view change to
	// replace the leader; the timeout doubles after each view whose leader proposed (at most 8x),
	// a view whose leader has been silent for two timeouts ends after a quarter of one, and it
	// resets on progress.
	ViewTimeoutMillis int `toml:"view_timeout_ms"`
	// EmptyBlockMillis: with an empty mempool, the leader waits this long before proposing an empty
	// block. With transactions waiting it proposes at once.
	EmptyBlockMillis int `toml:"empty_block_ms"`
	// MaxBlockTxs caps the transactions in a block this node proposes.
	MaxBlockTxs int `toml:"max_block_txs"`
	// StallWarnMillis: when no block has been finalized for this long, the node reports at WARN,
	// every StallWarnMillis, what it sees and waits for (see watchdog.go), and is not ready.
	StallWarnMillis int `toml:"stall_warn_ms"`
	// Proposals is how this node sends its proposals: "reference" (the block's header and the
	// hashes of its transactions, which the others hold from tx gossip and fetch by hash when
	// they lack some) or "full" (the whole block). Either way it takes both kinds in, and the
	// block decided, stored and certified is the same.
	Proposals string `toml:"proposals"`
	// FetchTimeoutMillis bounds the rebuilding of a proposal by reference, fetching included: a
	// proposal not rebuilt by then is not prepared. Keep it under the view timeout.
	FetchTimeoutMillis int `toml:"fetch_timeout_ms"`
}

// Proposal forms (ConsensusConfig.Proposals).
const (
	ProposalsByReference = "reference"
	ProposalsFull        = "full"
)

type MempoolConfig struct {
	// Size caps the pending transactions kept.
	Size int `toml:"size"`
	// GossipBatchMillis: transactions received by the API are gossiped in batches collected over
	// this long (or until a batch is full).
	GossipBatchMillis int `toml:"gossip_batch_ms"`
	// MaxPending: while the mempool holds this many transactions that can be proposed, the API
	// refuses requests at once (503 with Retry-After) rather than queue work the node cannot
	// finalize soon; transactions waiting behind a sender's nonce gap do not count (up to twice
	// this), and past this mark only transactions closing such gaps are taken. 0 means what the
	// chain finalized over the last second, at least two blocks' worth (2 × the block size this
	// node proposes, and at least 256) and at most eight. Of it, a node takes from its own API
	// only its share: the mark over the nodes taking submissions (overload.go).
	MaxPending int `toml:"max_pending"`
	// MaxFinalityLagMillis: while transactions are pending and no block has been finalized for
	// this long, the API refuses new ones the same way. 0 means two view timeouts.
	MaxFinalityLagMillis int `toml:"max_finality_lag_ms"`
}

type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `toml:"level"`
	// Format is text or json.
	Format string `toml:"format"`
}

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// Validate refuses a level or format the logger would not know: before, a misspelt level silently
// meant info and a misspelt format text.
func (l LogConfig) Validate() error {
	if _, ok := logLevels[strings.ToLower(l.Level)]; !ok {
		return fmt.Errorf("%w: log level %q: want debug, info, warn or error", ErrConfig, l.Level)
	}
	switch strings.ToLower(l.Format) {
	case "text", "json":
	default:
		return fmt.Errorf("%w: log format %q: want text or json", ErrConfig, l.Format)
	}
	return nil
}

// SlogLevel is Level for log/slog (info if Level is not valid; Validate first).
func (l LogConfig) SlogLevel() slog.Level {
	if lv, ok := logLevels[strings.ToLower(l.Level)]; ok {
		return lv
	}
	return slog.LevelInfo
}

// JSON tells whether Format asks for JSON lines.
func (l LogConfig) JSON() bool { return strings.EqualFold(l.Format, "json") }

// DefaultConfig is what `guild node init` writes.
func DefaultConfig() Config {
	return Config{
		Moniker: "guild-node",
		P2P: P2PConfig{
			Listen:       []string{"/ip4/127.0.0.1/tcp/26656", "/ip4/127.0.0.1/udp/26656/quic-v1"},
			Permissioned: true,
		},
		API: APIConfig{Listen: "127.0.0.1:8645", MaxEventSubscribers: 64, EventsKeepaliveMillis: 15000,
			EventsWriteTimeoutMillis: 30000, ReadTimeoutMillis: 30000, WriteTimeoutMillis: 60000,
			IdleTimeoutMillis: 120000, MaxConnections: 1024},
		Storage: StorageConfig{Backend: "pebbledb", MinFreeMB: 1024},
		Consensus: ConsensusConfig{
			TickMillis:         20,
			RetransmitTicks:    25,
			StallWarnMillis:    10000,
			Proposals:          ProposalsByReference,
			FetchTimeoutMillis: 1000,
		},
		Mempool: MempoolConfig{Size: 200000, GossipBatchMillis: 5},
		Log:     LogConfig{Level: "info", Format: "text"},
		Private: PrivateConfig{MaxBytes: state.MaxPrivateBytes, RequestsPerSec: 50},
		StateSync: StateSyncConfig{SnapshotInterval: 1000, SnapshotKeep: 2,
			ChunkBytes: state.DefaultSnapshotChunkBytes, DiscoveryMillis: 5000},
	}
}

// minKeepBlocks is the fewest blocks a pruning node keeps: the consensus core hands the last
// blocks to peers still deciding them, and block sync serves recent ones.
const minKeepBlocks = 100

// ErrConfig marks a setting that cannot work.
var ErrConfig = errors.New("node: bad config")

// Validate reports the first setting that cannot work.
// minMemoryLimitMB is the least memory_limit_mb taken: below it a node's ordinary live heap
// would keep the collector running.
const minMemoryLimitMB = 64

// ApplyMemoryLimit sets the process's soft memory limit from memory_limit_mb, if it is set. A
// process-wide setting: the node command calls it, not New (tests run many nodes in a process).
func (c *Config) ApplyMemoryLimit() {
	if c.MemoryLimitMB > 0 {
		debug.SetMemoryLimit(int64(c.MemoryLimitMB) << 20)
	}
}

func (c *Config) Validate() error {
	if err := c.Log.Validate(); err != nil {
		return err
	}
	if c.MemoryLimitMB < 0 || (c.MemoryLimitMB > 0 && c.MemoryLimitMB < minMemoryLimitMB) {
		return fmt.Errorf("node: memory_limit_mb %d: want 0 (the runtime's default) or at least %d", c.MemoryLimitMB, minMemoryLimitMB)
	}
	switch c.Storage.Backend {
	case "pebbledb", "goleveldb", "memdb":
	default:
		return fmt.Errorf("node: storage.backend %q: want pebbledb, goleveldb or memdb", c.Storage.Backend)
	}
	if c.Consensus.TickMillis <= 0 || c.Consensus.RetransmitTicks <= 0 {
		return errors.New("node: consensus tick_ms and retransmit_ticks must be positive")
	}
	if c.Consensus.EmptyBlockMillis < 0 || c.Consensus.ViewTimeoutMillis < 0 {
		return errors.New("node: consensus empty_block_ms and view_timeout_ms must be 0 (the consortium's) or positive")
	}
	if v := c.Consensus.ViewTimeoutMillis; v > 0 && v < 2*c.Consensus.TickMillis {
		return errors.New("node: consensus.view_timeout_ms must be at least two ticks (2 × tick_ms)")
	}
	if c.Consensus.MaxBlockTxs < 0 || c.Consensus.MaxBlockTxs > MaxBlockTxsLimit {
		return fmt.Errorf("node: consensus.max_block_txs must be 0 (the consortium's) or in 1..%d", MaxBlockTxsLimit)
	}
	if c.Consensus.StallWarnMillis <= 0 {
		return errors.New("node: consensus.stall_warn_ms must be positive")
	}
	if k := c.Storage.KeepBlocks; k != 0 && k < minKeepBlocks {
		return fmt.Errorf("%w: storage.keep_blocks must be 0 (keep every block) or at least %d", ErrConfig, minKeepBlocks)
	}
	if c.StateSync.SnapshotKeep <= 0 || c.StateSync.DiscoveryMillis <= 0 {
		return fmt.Errorf("%w: statesync snapshot_keep and discovery_ms must be positive", ErrConfig)
	}
	if b := c.StateSync.ChunkBytes; b < 1024 || b > state.MaxSnapshotChunkBytes/2 {
		return fmt.Errorf("%w: statesync.chunk_bytes must be in 1024..%d", ErrConfig, state.MaxSnapshotChunkBytes/2)
	}
	switch c.Consensus.Proposals {
	case ProposalsByReference, ProposalsFull:
	default:
		return fmt.Errorf("%w: consensus.proposals %q: want %q or %q", ErrConfig, c.Consensus.Proposals, ProposalsByReference, ProposalsFull)
	}
	if c.Consensus.FetchTimeoutMillis <= 0 {
		return fmt.Errorf("%w: consensus.fetch_timeout_ms must be positive", ErrConfig)
	}
	if c.Storage.MinFreeMB < 0 {
		return errors.New("node: storage.min_free_mb must be 0 (no check) or positive")
	}
	if c.API.MaxEventSubscribers <= 0 || c.API.EventsKeepaliveMillis <= 0 || c.API.EventsWriteTimeoutMillis <= 0 {
		return errors.New("node: api max_event_subscribers, events_keepalive_ms and events_write_timeout_ms must be positive")
	}
	if c.API.ReadTimeoutMillis <= 0 || c.API.WriteTimeoutMillis <= 0 || c.API.IdleTimeoutMillis <= 0 || c.API.MaxConnections <= 0 {
		return fmt.Errorf("%w: api read_timeout_ms, write_timeout_ms, idle_timeout_ms and max_connections must be positive", ErrConfig)
	}
	if (c.API.TLSCertFile == "") != (c.API.TLSKeyFile == "") {
		return fmt.Errorf("%w: api tls_cert_file and tls_key_file go together: set both for HTTPS, or neither", ErrConfig)
	}
	for _, o := range c.API.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			return err
		}
	}
	if a := c.Admin.Listen; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%w: admin.listen %q: want host:port: %v", ErrConfig, a, err)
		}
	}
	if c.Mempool.Size <= 0 || c.Mempool.GossipBatchMillis <= 0 {
		return errors.New("node: mempool size and gossip_batch_ms must be positive")
	}
	if c.Mempool.MaxPending < 0 || c.Mempool.MaxFinalityLagMillis < 0 {
		return errors.New("node: mempool max_pending and max_finality_lag_ms must be 0 (the default) or positive")
	}
	if c.Private.MaxBytes <= 0 || c.Private.MaxBytes > state.MaxPrivateBytes || c.Private.RequestsPerSec <= 0 {
		return fmt.Errorf("%w: private.max_bytes must be in 1..%d and private.requests_per_sec positive", ErrConfig, state.MaxPrivateBytes)
	}
	if len(c.P2P.Listen) == 0 {
		return errors.New("node: p2p.listen needs at least one multiaddr")
	}
	if c.P2P.ConsensusMsgsPerSec < 0 {
		return errors.New("node: p2p.consensus_msgs_per_sec must be 0 (the default) or positive")
	}
	for _, list := range []struct {
		key   string
		addrs []string
	}{{"listen", c.P2P.Listen}, {"announce", c.P2P.Announce}, {"bootstrap", c.P2P.Bootstrap}} {
		for _, a := range list.addrs {
			if _, err := ma.NewMultiaddr(a); err != nil {
				return fmt.Errorf("node: p2p.%s: %q is not a multiaddr: %v", list.key, a, err)
			}
		}
	}
	return nil
}

// checkOrigin accepts "*" or an origin as browsers send it: scheme://host[:port], nothing more.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("%w: api.cors_origins: %q is not an origin: want scheme://host[:port] (e.g. https://explorer.example.org) or \"*\"", ErrConfig, o)
	}
	return nil
}

// byReference: this node sends its proposals by reference (the default).
func (c *Config) byReference() bool { return c.Consensus.Proposals != ProposalsFull }

// fetchTimeout bounds rebuilding a proposal by reference (1 s if unset).
func (c *Config) fetchTimeout() time.Duration {
	if c.Consensus.FetchTimeoutMillis <= 0 {
		return time.Second
	}
	return time.Duration(c.Consensus.FetchTimeoutMillis) * time.Millisecond
}

func (c *Config) tick() time.Duration {
	return time.Duration(c.Consensus.TickMillis) * time.Millisecond
}

// LoadConfig reads HOME/config.toml on top of the defaults; unknown keys are an error, since a
// misspelt setting silently ignored is worse than a refusal to start.
func LoadConfig(home string) (Config, error) {
	cfg := DefaultConfig()
	md, err := toml.DecodeFile(filepath.Join(home, ConfigFile), &cfg)
	if err != nil {
		return cfg, fmt.Errorf("node: reading config: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return cfg, fmt.Errorf("node: unknown config keys in %s: %v", ConfigFile, und)
	}
	return cfg, cfg.Validate()
}

// SaveConfig writes cfg as HOME/config.toml with a header of comments.
func SaveConfig(home string, cfg Config) error {
	f, err := os.OpenFile(filepath.Join(home, ConfigFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprint(f, configHeader)
	if err := toml.NewEncoder(f).Encode(cfg); err != nil {
		return err
	}
	return f.Close()
}

const configHeader = `# Guild node configuration. Defaults:
#   moniker                    = "guild-node"
#   memory_limit_mb            = 0         soft limit on the Go runtime's memory, as GOMEMLIMIT (0: its default)
#   [p2p] listen               = ["/ip4/127.0.0.1/tcp/26656", "/ip4/127.0.0.1/udp/26656/quic-v1"]
#                                          multiaddrs to listen on (TCP with Noise or TLS, dialed
#                                          first: a dead peer's TCP connections close at once; QUIC,
#                                          dialed a second later if TCP has not connected)
#   [p2p] announce             = []        multiaddrs to tell peers instead of listen (e.g. behind NAT)
#   [p2p] bootstrap            = []        full multiaddrs (…/p2p/<peer id>) to dial and keep dialing
#   [p2p] permissioned         = true      only peers bound to current or scheduled validators (and observers) connect
#   [p2p] observers            = []        peer IDs of non-validating nodes also allowed in
#   [p2p] mdns                 = false     find peers on the local network by multicast DNS
#   [p2p] dht                  = false     find members by peer ID in a DHT private to the chain
#                              peers' addresses are remembered in data/p2p_peers.json and redialed
#   [p2p] consensus_msgs_per_sec = 0       consensus messages per second each author may send (0: 500)
#   [api] listen               = "127.0.0.1:8645"   HTTP API (unauthenticated: keep it on loopback)
#   [api] pprof                = false     serve /debug/pprof/ (profiling) on the API address
#                                          (unless [admin] listen is set: it is served there)
#   [api] max_event_subscribers = 64       GET /v1/events streams served at once; more get 503
#   [api] events_keepalive_ms  = 15000     keep-alive comment on an idle event stream this often
#   [api] events_write_timeout_ms = 30000  cut off an event subscriber that takes nothing this long
#   [api] read_timeout_ms      = 30000     a request (headers and body) must arrive within this
#   [api] write_timeout_ms     = 60000     an answer must be written within this (keep above 30000:
#                                          GET /v1/blocks/{h}?wait holds up to 30 s; events excepted)
#   [api] idle_timeout_ms      = 120000    close a kept-alive connection idle this long
#   [api] max_connections      = 1024      open API connections at most; more wait to be accepted
#   [api] cors_origins         = []        origins whose web pages may call the API ("*": any)
#   [api] tls_cert_file        = ""        with tls_key_file (PEM): serve the API over HTTPS
#   [api] tls_key_file         = ""
#   [admin] listen             = ""        e.g. "127.0.0.1:8646": serve /debug/pprof/ and
#                                          POST /v1/evidence there instead of on the API (keep it on loopback);
#                                          guild node backup of a running node needs it
#   [storage] backend          = "pebbledb"  or "goleveldb", or "memdb" (nothing kept on disk)
#   [storage] min_free_mb      = 1024      warn below this much free disk space on data/; below
#                                          100 MB (or this, if lower) log errors and report not ready
#   [storage] keep_blocks      = 0         keep only the last this many blocks (0: all); never
#                                          fewer than the kept snapshots need
#   [statesync] snapshot_interval = 1000   snapshot the state every this many blocks (0: off)
#   [statesync] snapshot_keep  = 2         snapshots kept on disk (data/snapshots)
#   [statesync] chunk_bytes    = 4194304   snapshot chunk size (keep it alike across the chain)
#   [statesync] enable         = false     with no state yet, join by state sync (as --state-sync)
#   [statesync] discovery_ms   = 5000      wait this long for peers' snapshot offers
#   [consensus] tick_ms        = 20        consensus clock period
#   [consensus] retransmit_ticks = 25      resend own messages after this many ticks without progress
#   [consensus] view_timeout_ms = 0        no commit for this long: change view (replace the leader)
#   [consensus] empty_block_ms = 0         with nothing to commit, propose an empty block this often
#   [consensus] max_block_txs  = 0         transactions per block this node proposes at most
#               0 = the consortium's parameter (genesis, then governance: 2000 ms, 1000 ms, 2000
#               txs unless changed); another value overrides it on this node only
#   [consensus] stall_warn_ms  = 10000     no block finalized for this long: log at WARN what the node
#                                          waits for and who is silent (every stall_warn_ms), not ready
#   [consensus] proposals      = "reference"  send proposals as header + transaction hashes (peers
#                                          fetch what they lack by hash), or "full" (whole blocks)
#   [consensus] fetch_timeout_ms = 1000    a proposal by reference not rebuilt within this is not prepared
#   [mempool] size             = 200000    pending transactions kept at most
#   [mempool] gossip_batch_ms  = 5         gossip API transactions in batches collected this long
#   [mempool] max_pending      = 0         this many proposable txs pending: the API answers 503
#                                          (Retry-After) at once; 0 = what the chain finalized in the
#                                          last second, from 2 to 8 × max_block_txs (at least 256)
#   [mempool] max_finality_lag_ms = 0      ... and while txs are pending and no block came for this
#                                          long; 0 = two view timeouts
#   [log] level                = "info"    debug, info, warn, error
#   [log] format               = "text"    or "json"
#   [private] member           = ""        the member whose private payloads this node holds;
#                                          "" = the one named like this node's validator
#   [private] max_bytes        = 1048576   largest ciphertext taken (API or stream), at most 1 MiB
#   [private] requests_per_sec = 50        private stream requests one peer may make per second

`
