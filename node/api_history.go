package node

// History and lists: GET /v1/accounts/{address}/txs (an account's transactions, newest first, by
// cursor) and GET /v1/blocks (block headers by height), both read from the block store's indexes
// (blockstore_index.go) up to the executed height, so a page never shows a block being written.

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

func (n *Node) historyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/accounts/{address}/txs", n.handleAccountTxs)
	mux.HandleFunc("GET /v1/blocks", n.handleBlocks)
}

func badRequest(w http.ResponseWriter, msg string) {
	writeError(w, http.StatusBadRequest, api.CodeBadRequest, msg)
}

// pageLimit reads ?limit= (default api.DefaultPageLimit, 1..MaxPageLimit).
func pageLimit(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return api.DefaultPageLimit, nil
	}
	l, err := strconv.Atoi(s)
	if err != nil || l < 1 || l > api.MaxPageLimit {
		return 0, fmt.Errorf("limit must be a number from 1 to %d, got %q", api.MaxPageLimit, s)
	}
	return l, nil
}

func timeJSON(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

// historyBlock is what rendering some transactions of a stored block needs.
type historyBlock struct {
	timeMs  int64
	count   int               // transactions in the block
	txs     map[uint32][]byte // those asked for
	results []StoredResult
}

// historyBlocks reads, for each height of the positions in list, the transactions listed.
func (n *Node) historyBlocks(list []TxPos) (map[uint64]*historyBlock, error) {
	want := map[uint64][]uint32{}
	for _, p := range list {
		want[p.Height] = append(want[p.Height], p.Index)
	}
	out := make(map[uint64]*historyBlock, len(want))
	for h, idx := range want {
		var (
			hb  historyBlock
			err error
		)
		if hb.timeMs, hb.count, hb.txs, err = n.blocks.BlockTxs(h, idx); err != nil {
			return nil, err
		}
		if hb.results, err = n.blocks.Results(h); err != nil {
			return nil, err
		}
		out[h] = &hb
	}
	return out, nil
}

// txAt renders transaction p, read by historyBlocks, as its event.
func (n *Node) txAt(p TxPos, blocks map[uint64]*historyBlock) (*api.TxEventJSON, *historyBlock, error) {
	hb := blocks[p.Height]
	raw, ok := hb.txs[p.Index]
	if !ok {
		return nil, nil, fmt.Errorf("%w: the index names transaction %d of block %d, which has %d",
			ErrStoreCorrupt, p.Index, p.Height, hb.count)
	}
	return n.txEvent(p.Height, int(p.Index), raw, hb.results), hb, nil
}

// handleAccountTxs: ?limit= (1..500, default 50) and ?cursor= (a next_cursor).
func (n *Node) handleAccountTxs(w http.ResponseWriter, r *http.Request) {
	a, err := state.ParseAddress(r.PathValue("address"))
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	q := r.URL.Query()
	limit, err := pageLimit(q)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	var after TxPos
	if c := q.Get("cursor"); c != "" {
		if after, err = ParseCursor(c); err != nil {
			badRequest(w, "cursor must be a next_cursor this API returned: "+err.Error())
			return
		}
	}
	top := n.executedHeight()
	list, err := n.blocks.AccountTxs(a, top, after, limit+1) // one more says whether a page follows
	if err != nil {
		n.writeInternalError(w, "listing the transactions of "+a.String(), err)
		return
	}
	resp := api.AccountTxsResponse{Address: a.String(), Height: top, Txs: make([]api.AccountTxJSON, 0, min(len(list), limit))}
	if len(list) > limit {
		list = list[:limit]
		resp.NextCursor = list[limit-1].String()
	}
	blocks, err := n.historyBlocks(list)
	if err != nil {
		n.writeInternalError(w, "reading the blocks of the transactions of "+a.String(), err)
		return
	}
	for _, p := range list {
		ev, hb, err := n.txAt(p, blocks)
		if err != nil {
			n.writeInternalError(w, fmt.Sprintf("reading transaction %d of block %d", p.Index, p.Height), err)
			return
		}
		resp.Txs = append(resp.Txs, api.AccountTxJSON{TxEventJSON: *ev, Time: timeJSON(hb.timeMs)})
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleBlocks: ?from= (default 1, or the last block with ?order=desc), ?limit= (1..500, default
// 50), ?order=asc|desc.
func (n *Node) handleBlocks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := pageLimit(q)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	desc := false
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		desc = true
	default:
		badRequest(w, fmt.Sprintf("order must be asc or desc, got %q", q.Get("order")))
		return
	}
	top := n.executedHeight()
	from := uint64(1)
	if desc {
		from = top
	}
	if s := q.Get("from"); s != "" {
		if from, err = strconv.ParseUint(s, 10, 64); err != nil || from == 0 {
			badRequest(w, fmt.Sprintf("from must be a block height (1 or more), got %q", s))
			return
		}
		if desc {
			from = min(from, top)
		}
	}
	resp := api.BlocksResponse{Blocks: []api.BlockHeaderJSON{}, Height: top}
	h := from
	for ; h >= 1 && h <= top && len(resp.Blocks) < limit; h = next(h, desc) {
		sh, err := n.blocks.Header(h)
		if err != nil {
			n.writeInternalError(w, fmt.Sprintf("reading the header of block %d", h), err)
			return
		}
		resp.Blocks = append(resp.Blocks, api.BlockHeaderJSON{Height: h, Hash: sh.Hash.String(),
			Header: headerJSON(&sh.Header), Txs: sh.Txs, Evidence: sh.Evidence})
	}
	resp.NextFrom = h // 0 once a descending list passed block 1
	writeJSON(w, http.StatusOK, resp)
}

func next(h uint64, desc bool) uint64 {
	if desc {
		return h - 1
	}
	return h + 1
}

func headerJSON(h *Header) api.HeaderJSON {
	out := api.HeaderJSON{
		ChainID: h.ChainID, Height: h.Height, Time: timeJSON(h.Time),
		PrevHash: h.PrevHash.String(), StateRoot: h.StateRoot.String(), TxsHash: h.TxsHash.String(),
		Proposer: h.Proposer, Leader: h.Leader, Version: h.ProtocolVersion(),
	}
	if h.EvidenceHash != (state.Hash{}) {
		out.EvidenceHash = h.EvidenceHash.String()
	}
	if h.ReceiptsRoot != (state.Hash{}) {
		out.ReceiptsRoot = h.ReceiptsRoot.String()
	}
	for _, s := range h.Skips {
		out.LeaderSkips = append(out.LeaderSkips, api.LeaderSkipJSON{Validator: s.Validator, Until: timeJSON(s.Until), Misses: s.Misses})
	}
	return out
}

// describeTx adds to the status of a transaction in a block what the block says of it.
func (n *Node) describeTx(out *api.TxStatus, loc TxLocation) error {
	p := TxPos{Height: loc.Height, Index: loc.Index}
	blocks, err := n.historyBlocks([]TxPos{p})
	if err != nil {
		return err
	}
	ev, hb, err := n.txAt(p, blocks)
	if err != nil {
		return err
	}
	if ev.Hash != out.Hash {
		return fmt.Errorf("%w: the index puts transaction %s at %d/%d, which holds %s", ErrStoreCorrupt,
			out.Hash, loc.Height, loc.Index, ev.Hash)
	}
	out.Result, out.Time, out.From, out.Op, out.Accounts = ev.Status, timeJSON(hb.timeMs), ev.From, ev.Op, ev.Accounts
	return nil
}
