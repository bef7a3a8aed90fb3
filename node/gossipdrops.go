package node

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
)

// Where a gossiped transaction can go missing without anyone being at fault: pubsub drops the
// message (guild_p2p_tx_messages_dropped_total), or the receiver verifies it and does not pool
// it (guild_gossip_txs_not_pooled_total). Either way the receiver will not propose it, and if
// the node that accepted it dies, nobody does until that node is back.

// notPooledReason is the label of guild_gossip_txs_not_pooled_total for err, a refusal by
// checkTx or the mempool.
func notPooledReason(err error) string {
	switch {
	case errors.Is(err, ErrNonceTooFar):
		return "nonce_too_far"
	case errors.Is(err, ErrNonceTaken):
		return "nonce_taken"
	case errors.Is(err, ErrMempoolFull) && errors.Is(err, errCatchingUp):
		return "catching_up"
	case errors.Is(err, ErrMempoolFull):
		return "mempool_full"
	case errors.Is(err, state.ErrBadNonce):
		return "nonce_used"
	}
	return "other"
}

type txDropsCollector struct {
	h    *p2p.Host
	desc *prometheus.Desc
}

func newTxDropsCollector(h *p2p.Host) *txDropsCollector {
	return &txDropsCollector{h: h, desc: prometheus.NewDesc("guild_p2p_tx_messages_dropped_total",
		"Transaction gossip messages (batches) that pubsub dropped on its own, by reason: validation_queue_full and validation_throttled (received faster than this node verifies), undeliverable (this node read them too slowly), outbound_queue_full (not sent to a peer that reads too slowly).",
		[]string{"reason"}, nil)}
}

func (c *txDropsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *txDropsCollector) Collect(ch chan<- prometheus.Metric) {
	for i, v := range c.h.TxMessagesDropped() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), p2p.TxDropReasons[i])
	}
}
