package node

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/guild-ledger/guild/state"
)

// metrics are served at GET /metrics in the Prometheus text format. Each node has its own registry
// so that tests can run several nodes in one process.
type metrics struct {
	reg           *prometheus.Registry
	height        prometheus.Gauge
	blocks        prometheus.Counter
	txsApplied    prometheus.Counter
	txsRejected   prometheus.Counter
	mempool       prometheus.Gauge
	commitSeconds prometheus.Histogram
	heightSeconds prometheus.Histogram
	view          prometheus.Gauge
	viewChanges   prometheus.Gauge
	gossipDropped prometheus.Counter
	pendingLogged prometheus.Gauge
	pendingResent prometheus.Counter
	sendDropped   prometheus.Counter
	sent          *prometheus.CounterVec
	// roundsPerHeight: views used to finalize each height (the decision's view + 1).
	roundsPerHeight   prometheus.Histogram
	evidenceCaught    prometheus.Counter
	evidenceCommitted prometheus.Counter
	evidencePending   prometheus.Gauge
	// invalidMessages counts correctly signed consensus messages the core refused as invalid, by
	// validator; outOfWindow, those dropped before verification for their height or view.
	invalidMessages *prometheus.CounterVec
	outOfWindow     *prometheus.CounterVec
	leaderSkips     prometheus.Counter
	leadersSkipped  prometheus.Gauge
	// peersDown counts validators' nodes this node lost its last connection to.
	peersDown prometheus.Counter
	// invalidProposals counts, by leader, signed proposals refused because a transaction in them
	// would fail; txsLeftOut the transactions this node's own proposals left out for failing.
	invalidProposals *prometheus.CounterVec
	txsLeftOut       prometheus.Counter
	// checkpoints counts the checkpoints taken for backups, by result (ok, failed).
	checkpoints *prometheus.CounterVec
	// apiRefused counts submissions refused at the door with 503 (overload.go), by reason.
	apiRefused *prometheus.CounterVec
	// verifyBatch and verifySeconds describe the verifier's batches (verifier.go).
	verifyBatch   prometheus.Histogram
	verifySeconds prometheus.Histogram
	// Protocol upgrades (upgrade.go).
	protocolVersion   prometheus.Gauge
	protocolSupported prometheus.Gauge
	upgradeHeight     prometheus.Gauge
	upgradeRequired   prometheus.Gauge
	// Proposals by reference (byref.go): per proposal, the transactions not held locally and
	// those fetched, the time fetching took, proposals not rebuilt by reason, and peers whose
	// fetch answers were wrong.
	refMissing      prometheus.Histogram
	refFetched      prometheus.Histogram
	refFetchSeconds prometheus.Histogram
	refFailed       *prometheus.CounterVec
	fetchBadPeers   prometheus.Counter
	// heightPhase: where each height's time went (phases.go).
	heightPhase *prometheus.HistogramVec
	// mempoolGapped: pending transactions behind a nonce gap after the last block.
	mempoolGapped prometheus.Gauge
	// gossipNotPooled: verified gossiped transactions this node did not put in its mempool, by
	// reason (gossipReceiver): it will not propose them.
	gossipNotPooled *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg:         prometheus.NewRegistry(),
		height:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_height", Help: "Last committed block height."}),
		blocks:      prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_blocks_committed_total", Help: "Blocks committed since start."}),
		txsApplied:  prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_txs_applied_total", Help: "Transactions applied by committed blocks."}),
		txsRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_txs_rejected_total", Help: "Transactions in committed blocks that execution rejected."}),
		mempool:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_mempool_size", Help: "Pending transactions."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "guild_block_commit_seconds", Help: "Time to store and execute a decided block.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		heightSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "guild_height_seconds", Help: "Time from one committed block to the next, as this node saw it: commit latency per height.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		view:          prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_consensus_view", Help: "View of the height being decided (0 unless the leader failed)."}),
		viewChanges:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_consensus_view_changes", Help: "Views this node has moved to since it started (leaders replaced)."}),
		gossipDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_gossip_dropped_total", Help: "Admitted transactions not gossiped because the queue was full."}),
		pendingResent: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_mempool_resent_total", Help: "Transactions this node accepted from its API and gossiped again because they were still pending 10 s after they were last sent, or because a peer joined the transactions topic."}),
		pendingLogged: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_mempool_logged", Help: "Transactions accepted from this node's API and kept in its pending log until they leave the mempool (taken back after a restart)."}),
		sendDropped:   prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_consensus_send_dropped_total", Help: "Consensus messages dropped because the send queue was full."}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_consensus_sent_total",
			Help: "Consensus messages this node published, by type (retransmissions included)."}, []string{"type"}),
		roundsPerHeight: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "guild_consensus_rounds_per_height", Help: "Views used to finalize each height: 1 when the first leader's block was committed, one more per view change.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 16},
		}),
		evidenceCaught:    prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_evidence_caught_total", Help: "Equivocations this node's consensus core caught (conflicting signed messages from one validator)."}),
		evidenceCommitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_evidence_committed_total", Help: "Pieces of equivocation evidence in blocks this node committed."}),
		evidencePending:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_evidence_pending", Help: "Verified evidence waiting in the pool for a block."}),
		invalidMessages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_consensus_invalid_messages_total",
			Help: "Correctly signed consensus messages the core refused for a reason an honest validator never gives (malformed, wrong leader, invalid value or certificate, equivocation), by the validator that signed them."},
			[]string{"validator"}),
		outOfWindow: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_consensus_out_of_window_total",
			Help: "Consensus messages ignored before verification because their height or view is far from this node's, by reason."},
			[]string{"reason"}),
		leaderSkips: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_consensus_leader_skips_total",
			Help: "Turns a scheduled leader missed (another validator built the block of its height); each passes it over as leader for a while."}),
		peersDown: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_consensus_peer_disconnects_total",
			Help: "Times this node lost its last connection to a validator's node; a leader lost so before it proposed is given up an eighth of a view timeout later."}),
		leadersSkipped: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_consensus_leaders_skipped",
			Help: "Validators passed over as leader at the next height for having missed a turn recently."}),
		invalidProposals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_consensus_invalid_proposals_total",
			Help: "Signed proposals refused because a transaction in them would fail (a correct leader leaves those out), by leader; see GET /v1/offences."}, []string{"validator"}),
		txsLeftOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_txs_left_out_total",
			Help: "Transactions this node, as leader, left out of its proposals because they would fail (rejected, or waiting on an earlier nonce)."}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_backup_checkpoints_total",
			Help: "Store checkpoints taken for `guild node backup` through the admin listener, by result (ok, failed)."}, []string{"result"}),
		apiRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_api_refused_total",
			Help: "Submission requests refused with 503 and Retry-After because the node was overloaded: reason pending (mempool above mempool.max_pending) or lag (no block finalized for mempool.max_finality_lag_ms)."}, []string{"reason"}),
		verifyBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "guild_verify_batch_txs",
			Help:    "Transactions per signature-verification batch (API and gossip together; larger is cheaper per signature).",
			Buckets: []float64{1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096}}),
		verifySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "guild_verify_batch_seconds",
			Help: "Time to verify one signature-verification batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12)}),
		protocolVersion: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_protocol_version",
			Help: "Protocol version in force for the next block."}),
		protocolSupported: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_protocol_version_supported",
			Help: "Newest protocol version this binary supports."}),
		upgradeHeight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_upgrade_pending_height",
			Help: "Activation height of the protocol upgrade scheduled next, 0 when none is; see GET /v1/upgrades."}),
		upgradeRequired: prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_upgrade_required",
			Help: "1 when the node stops (or refuses to start) because the protocol version in force at the next height is newer than this binary supports: install a binary that supports it."}),
		refMissing: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "guild_proposal_ref_missing_txs",
			Help:    "Per proposal received by reference: its transactions this node held neither in its mempool nor in its recent-transaction cache.",
			Buckets: []float64{0, 1, 4, 16, 64, 256, 1024, 4096}}),
		refFetched: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "guild_proposal_ref_fetched_txs",
			Help:    "Per proposal by reference with transactions missing: how many were fetched from peers by hash.",
			Buckets: []float64{0, 1, 4, 16, 64, 256, 1024, 4096}}),
		refFetchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "guild_proposal_ref_fetch_seconds",
			Help: "Per proposal by reference with transactions missing: time to fetch them (or to give up).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 12)}),
		refFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_proposal_ref_failed_total",
			Help: "Proposals by reference this node could not rebuild, so did not prepare: reason unavailable (transactions not obtained within consensus.fetch_timeout_ms) or invalid (the rebuilt block is not the one signed)."}, []string{"reason"}),
		fetchBadPeers: prometheus.NewCounter(prometheus.CounterOpts{Name: "guild_tx_fetch_bad_answers_total",
			Help: "Transaction fetch answers discarded because the peer sent bytes that were not the transactions asked for, or broke the protocol."}),
	}
	m.heightPhase = newHeightPhaseHistogram()
	m.mempoolGapped = prometheus.NewGauge(prometheus.GaugeOpts{Name: "guild_mempool_gapped",
		Help: "Pending transactions that cannot be proposed after the last block: they wait behind a nonce gap of their sender (they do not count against mempool.max_pending)."})
	m.gossipNotPooled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "guild_gossip_txs_not_pooled_total",
		Help: "Verified transactions received by gossip that this node did not put in its mempool, so will not propose, by reason: mempool_full, nonce_too_far (more than 1024 past the sender's next nonce), nonce_taken (another pending transaction of the sender has that nonce), catching_up (this node is behind the chain), nonce_used (already committed: harmless), other (a state check failed)."},
		[]string{"reason"})
	m.protocolSupported.Set(float64(state.SupportedVersion))
	m.reg.MustRegister(m.refMissing, m.refFetched, m.refFetchSeconds, m.refFailed, m.fetchBadPeers, m.protocolVersion, m.protocolSupported, m.upgradeHeight, m.upgradeRequired,
		m.verifyBatch, m.verifySeconds, m.apiRefused, m.checkpoints, m.invalidMessages, m.outOfWindow, m.leaderSkips, m.leadersSkipped, m.peersDown, m.invalidProposals, m.txsLeftOut,
		m.roundsPerHeight, m.evidenceCaught, m.evidenceCommitted, m.evidencePending,
		m.height, m.blocks, m.txsApplied, m.txsRejected, m.mempool, m.commitSeconds, m.heightSeconds, m.view, m.viewChanges,
		m.gossipDropped, m.pendingLogged, m.pendingResent, m.sendDropped, m.sent, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.heightPhase, m.mempoolGapped, m.gossipNotPooled)
	return m
}
