package testnet

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/guild-ledger/guild/consensus"
	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
)

// The invariants a chaos run (or any e2e test) checks afterwards, over every node's HTTP API only:
// black box, so what it proves holds for whatever a node runs.
const (
	InvNodesAnswer    = "every node answers"
	InvSameBlocks     = "same block hash at every height on every node"
	InvCertificates   = "certificate valid for the validator set of its height"
	InvHeaders        = "header fits the block (height, txs hash, block hash) and links to its parent"
	InvNoDuplicateTxs = "no transaction committed twice"
	InvSupply         = "native supply conserved"
	InvAckedKept      = "transactions seen committed are still committed (acknowledged txs lost)"
	InvTxLookups      = "GET /v1/txs agrees with the blocks on every node"
	InvNoScoreCuts    = "no honest peer cut off for its gossip score"
	// InvAcceptedFinalized is judged on the load's report (chaos.go), not over the API.
	InvAcceptedFinalized = "transactions accepted (202) are finalized by the end (none silently dropped)"
)

// CheckOptions say what to check.
type CheckOptions struct {
	APIs    []string      // every node's API; the first is the reference chain
	Genesis *node.Genesis // the validator set and supply at height 0
	// Acked maps each transaction hash the load generator saw committed to the height it saw it
	// at: each must be at that height at the end.
	Acked map[state.Hash]uint64
	// Settle is how long to wait for every node to reach the height the highest one had when the
	// check began (a node just restarted may still be syncing) [30s].
	Settle time.Duration
	// Since, if set, starts the liveness measurements (longest gap, rates) at this time.
	Since time.Time
	// Split, if set, divides the rates into before and after it (a hostile node's start).
	Split time.Time
	// Until, if set, ends the liveness measurements (the end of a run, before its check).
	Until time.Time
	// Marks are moments (a fault's start) to measure the time to the next block from
	// (CheckReport.NextBlock).
	Marks []time.Time
	// TxLookups is how many acknowledged transactions to look up by hash on every node [200].
	TxLookups int
	// Parallel bounds the API requests in flight [8].
	Parallel int
	// AllHonest says no node misbehaved: then none may have disconnected a peer for its gossip
	// score (guild_p2p_score_disconnects_total, since each node's last start), since only
	// misbehaviour should cost score.
	AllHonest bool
}

// Invariant is one line of the report: how many things were checked and how many failed, with a
// few examples of the failures.
type Invariant struct {
	Name       string   `json:"name"`
	Checked    int      `json:"checked"`
	Violations int      `json:"violations"`
	Examples   []string `json:"examples,omitempty"`
	Note       string   `json:"note,omitempty"`
}

const maxExamples = 5

func (inv *Invariant) fail(format string, args ...any) {
	inv.Violations++
	if len(inv.Examples) < maxExamples {
		inv.Examples = append(inv.Examples, fmt.Sprintf(format, args...))
	}
}

// Rates are the blocks and transactions committed in a span of block times.
type Rates struct {
	From, To time.Time
	Blocks   int
	Txs      int
}

// Seconds is the span's length.
func (r Rates) Seconds() float64 { return r.To.Sub(r.From).Seconds() }

// BlocksPerSec and TxsPerSec are 0 over an empty span.
func (r Rates) BlocksPerSec() float64 { return perSec(r.Blocks, r.Seconds()) }
func (r Rates) TxsPerSec() float64    { return perSec(r.Txs, r.Seconds()) }

func perSec(n int, s float64) float64 {
	if s <= 0 {
		return 0
	}
	return float64(n) / s
}

// CheckReport is what CheckInvariants found.
type CheckReport struct {
	Heights []uint64 `json:"heights"` // each node's height when checked (0: not answering)
	// Checked is the height every answering node reached: all are compared up to it. Top is the
	// highest node's height: its chain, the reference, is checked on its own above Checked, and
	// is the one liveness, supply and the acknowledged transactions are judged on.
	Checked    uint64 `json:"checked_height"`
	Top        uint64 `json:"top_height"`
	Invariants []*Invariant
	// LongestGap is the longest time between consecutive block header times from Since on,
	// ending at block GapEnd — or, when GapEnd is 0, at Until: the chain stopped and the run
	// ended with no block since.
	LongestGap time.Duration `json:"longest_gap"`
	GapEnd     uint64        `json:"gap_end_height"`
	// NextBlock is, for each of CheckOptions.Marks, the time from it to the header time of the
	// first block after it; -1 when none came.
	NextBlock []time.Duration `json:"next_block_after_marks"`
	// Before and After are the rates before and after Split (Before covers everything from
	// Since when there is no Split).
	Before, After Rates
}

// OK reports whether no invariant was violated.
func (r *CheckReport) OK() bool {
	for _, inv := range r.Invariants {
		if inv.Violations > 0 {
			return false
		}
	}
	return true
}

// Violations counts them over all invariants.
func (r *CheckReport) Violations() int {
	n := 0
	for _, inv := range r.Invariants {
		n += inv.Violations
	}
	return n
}

// Invariant finds one by name.
func (r *CheckReport) Invariant(name string) *Invariant {
	for _, inv := range r.Invariants {
		if inv.Name == name {
			return inv
		}
	}
	return nil
}

// WriteText prints the invariants as a table.
func (r *CheckReport) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "INVARIANT\tCHECKED\tVIOLATIONS\n")
	for _, inv := range r.Invariants {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", inv.Name, inv.Checked, inv.Violations)
	}
	tw.Flush()
	for _, inv := range r.Invariants {
		if inv.Note != "" {
			fmt.Fprintf(w, "  note (%s): %s\n", inv.Name, inv.Note)
		}
		for _, e := range inv.Examples {
			fmt.Fprintf(w, "  VIOLATION (%s): %s\n", inv.Name, e)
		}
	}
}

// nodeChain is what one node served.
type nodeChain struct {
	api    string
	height uint64
	blocks []*api.BlockResponse // blocks[h-1]; nil where the node did not serve it
	err    error
}

// CheckInvariants reads every block of every node up to the lowest height they all reached, and
// checks the invariants of a BFT ledger over them (see the Inv* names). It returns an error only
// when it could not check at all; violations are in the report.
func CheckInvariants(ctx context.Context, o CheckOptions) (*CheckReport, error) {
	if len(o.APIs) == 0 || o.Genesis == nil {
		return nil, errors.New("testnet: checking invariants needs the nodes' APIs and the genesis")
	}
	if o.Settle <= 0 {
		o.Settle = 30 * time.Second
	}
	if o.TxLookups == 0 {
		o.TxLookups = 200
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	r := &CheckReport{}
	answer := &Invariant{Name: InvNodesAnswer}
	r.Invariants = append(r.Invariants, answer)
	clients := make([]*api.Client, len(o.APIs))
	for i, apiURL := range o.APIs {
		clients[i] = api.NewClient(apiURL)
	}

	// Settle: the height to check is what the highest node had at the start, once all reach it.
	heights := settle(ctx, clients, o.Settle)
	r.Heights = heights
	target := slices.Max(heights)
	var up []int
	for i, h := range heights {
		answer.Checked++
		switch {
		case h == 0:
			answer.fail("%s does not answer /v1/status", o.APIs[i])
		default:
			up = append(up, i)
		}
	}
	if len(up) == 0 {
		return r, nil
	}
	checked := target
	for _, i := range up {
		checked = min(checked, heights[i])
	}
	r.Checked = checked
	if checked < target {
		answer.Note = fmt.Sprintf("not every node reached height %d within %s; all compared up to %d", target, o.Settle, checked)
	}
	top, refK := uint64(0), 0
	for k, i := range up {
		if heights[i] > top {
			top, refK = heights[i], k
		}
	}
	r.Top = top

	chains := make([]*nodeChain, len(up))
	for k, i := range up {
		chains[k] = &nodeChain{api: o.APIs[i], height: heights[i], blocks: make([]*api.BlockResponse, heights[i])}
	}
	if err := fetchBlocks(ctx, clients, up, chains, top, o.Parallel); err != nil {
		return r, err
	}
	for _, c := range chains {
		if c.err != nil {
			answer.fail("%s: %v", c.api, c.err)
		}
	}

	sets := validatorSets(ctx, o.Genesis, clients[up[0]])
	r.Invariants = append(r.Invariants,
		checkSameBlocks(chains, top),
		checkCertificates(o.Genesis.ChainID, sets, chains),
		checkHeaders(chains))
	ref := chains[refK]
	index, dup := indexTxs(ref)
	r.Invariants = append(r.Invariants, dup)
	r.Invariants = append(r.Invariants, checkSupply(ctx, o.Genesis, ref, clients, up))
	r.Invariants = append(r.Invariants, checkAcked(o.Acked, index, top))
	r.Invariants = append(r.Invariants, checkTxLookups(ctx, o.Acked, index, clients, up, heights, o.TxLookups))
	if o.AllHonest {
		r.Invariants = append(r.Invariants, checkNoScoreCuts(ctx, o.APIs, up))
	}
	r.liveness(ref, o.Since, o.Split, o.Until)
	r.NextBlock = nextBlocks(ref, o.Marks)
	return r, nil
}

// settle polls every node's height until each reaches the highest seen at the start, or d passes;
// it returns the last heights (0 for a node that does not answer).
func settle(ctx context.Context, clients []*api.Client, d time.Duration) []uint64 {
	deadline := time.Now().Add(d)
	heights := make([]uint64, len(clients))
	var target uint64
	for first := true; ; first = false {
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Go(func() {
				qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if st, err := c.Status(qctx); err == nil {
					heights[i] = st.Height
				} else {
					heights[i] = 0
				}
			})
		}
		wg.Wait()
		if first {
			target = slices.Max(heights)
		}
		done := true
		for _, h := range heights {
			done = done && h >= target
		}
		if done || time.Now().After(deadline) || ctx.Err() != nil {
			return heights
		}
		pause(ctx, 200*time.Millisecond)
	}
}

// fetchBlocks reads heights 1..upTo of every chain, par requests at a time.
func fetchBlocks(ctx context.Context, clients []*api.Client, up []int, chains []*nodeChain, upTo uint64, par int) error {
	type job struct {
		k int
		h uint64
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() {
			for j := range jobs {
				c := chains[j.k]
				var b api.BlockResponse
				var err error
				for try := 0; try < 3; try++ {
					qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					b, err = clients[up[j.k]].Block(qctx, j.h)
					cancel()
					if err == nil || ctx.Err() != nil {
						break
					}
				}
				mu.Lock()
				if err != nil {
					if c.err == nil {
						c.err = fmt.Errorf("block %d: %w", j.h, err)
					}
				} else {
					c.blocks[j.h-1] = &b
				}
				mu.Unlock()
			}
		})
	}
	for h := uint64(1); h <= upTo && ctx.Err() == nil; h++ {
		for k, c := range chains {
			if h <= uint64(len(c.blocks)) {
				jobs <- job{k, h}
			}
		}
	}
	close(jobs)
	wg.Wait()
	return ctx.Err()
}

// setFrom is one validator set and the height it is in force from.
type setFrom struct {
	from uint64
	set  consensus.ValidatorSet
}

// validatorSets gives the sets to check certificates against: genesis's, and the set the
// reference node says is in force now (from /v1/validators), if governance changed it. A set in
// force only between the two cannot be read from the API; a certificate of that span that fails
// against both is reported, with a note.
func validatorSets(ctx context.Context, g *node.Genesis, c *api.Client) []setFrom {
	sets := []setFrom{{from: 1, set: g.ValidatorSet()}}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	vr, err := c.Validators(qctx)
	if err != nil || vr.Current.Height <= 1 {
		return sets
	}
	var vs consensus.ValidatorSet
	for _, v := range vr.Current.Validators {
		k, err := hex.DecodeString(v.PubKey)
		if err != nil {
			return sets
		}
		vs.Validators = append(vs.Validators, consensus.Validator{PubKey: k, Power: v.Power})
	}
	return append(sets, setFrom{from: vr.Current.Height, set: vs})
}

func setAt(sets []setFrom, h uint64) consensus.ValidatorSet {
	s := sets[0].set
	for _, sf := range sets {
		if sf.from <= h {
			s = sf.set
		}
	}
	return s
}

func checkSameBlocks(chains []*nodeChain, upTo uint64) *Invariant {
	inv := &Invariant{Name: InvSameBlocks}
	for h := uint64(1); h <= upTo; h++ {
		var ref *api.BlockResponse
		refAPI := ""
		for _, c := range chains {
			if h > uint64(len(c.blocks)) || c.blocks[h-1] == nil {
				continue
			}
			b := c.blocks[h-1]
			inv.Checked++
			if ref == nil {
				ref, refAPI = b, c.api
				continue
			}
			if b.Hash != ref.Hash {
				inv.fail("height %d: %s has %s, %s has %s", h, refAPI, short(ref.Hash), c.api, short(b.Hash))
			}
		}
	}
	return inv
}

func checkCertificates(chainID string, sets []setFrom, chains []*nodeChain) *Invariant {
	inv := &Invariant{Name: InvCertificates}
	if len(sets) > 1 {
		inv.Note = fmt.Sprintf("validator set changed at height %d; sets between genesis and then are not on the API", sets[1].from)
	}
	for _, c := range chains {
		for i, b := range c.blocks {
			if b == nil {
				continue
			}
			h := uint64(i + 1)
			inv.Checked++
			cert, err := certFromJSON(b.Certificate)
			switch {
			case err != nil:
				inv.fail("%s height %d: %v", c.api, h, err)
			case cert.Height != h:
				inv.fail("%s height %d: certificate for height %d", c.api, h, cert.Height)
			case cert.Digest.String() != b.Hash:
				inv.fail("%s height %d: certificate for %s, block %s", c.api, h, short(cert.Digest.String()), short(b.Hash))
			default:
				if err := consensus.VerifyCertificate(chainID, setAt(sets, h), cert); err != nil {
					inv.fail("%s height %d: %v", c.api, h, err)
				}
			}
		}
	}
	return inv
}

func certFromJSON(cj api.CertificateJSON) (*consensus.Certificate, error) {
	d, err := state.ParseHash(cj.Digest)
	if err != nil {
		return nil, fmt.Errorf("certificate digest: %w", err)
	}
	cert := &consensus.Certificate{Height: cj.Height, View: cj.View, Digest: consensus.Digest(d)}
	for _, v := range cj.Votes {
		sig, err := hex.DecodeString(v.Sig)
		if err != nil {
			return nil, fmt.Errorf("certificate vote of %d: signature not hex", v.Validator)
		}
		cert.Votes = append(cert.Votes, consensus.Vote{Validator: v.Validator, Sig: sig})
	}
	return cert, nil
}

// checkHeaders recomputes each block's transactions hash and, for a block without evidence
// (whose JSON holds everything its encoding does), its hash; and checks each header names its
// parent's hash.
func checkHeaders(chains []*nodeChain) *Invariant {
	inv := &Invariant{Name: InvHeaders}
	skipped := 0
	for _, c := range chains {
		for i, b := range c.blocks {
			if b == nil {
				continue
			}
			h := uint64(i + 1)
			inv.Checked++
			blk, err := blockFromJSON(b)
			if err != nil {
				inv.fail("%s height %d: %v", c.api, h, err)
				continue
			}
			switch {
			case blk.Header.Height != h || b.Height != h:
				inv.fail("%s height %d: header says height %d", c.api, h, blk.Header.Height)
				continue
			case node.TxsHash(blk.Txs) != blk.Header.TxsHash:
				inv.fail("%s height %d: txs_hash does not match the transactions", c.api, h)
				continue
			}
			if len(b.Evidence) == 0 {
				value, err := blk.Encode()
				if err != nil {
					inv.fail("%s height %d: encoding: %v", c.api, h, err)
					continue
				}
				if got := consensus.DigestOf(value).String(); got != b.Hash {
					inv.fail("%s height %d: block hashes to %s, served as %s", c.api, h, short(got), short(b.Hash))
					continue
				}
			} else {
				skipped++
			}
			if h > 1 && c.blocks[h-2] != nil && b.Header.PrevHash != c.blocks[h-2].Hash {
				inv.fail("%s height %d: prev_hash %s, block %d is %s", c.api, h, short(b.Header.PrevHash), h-1, short(c.blocks[h-2].Hash))
			}
		}
	}
	if skipped > 0 {
		inv.Note = fmt.Sprintf("%d blocks carry evidence: their hash is not recomputed from JSON (their certificate still binds it)", skipped)
	}
	return inv
}

// blockFromJSON rebuilds a block without its evidence.
func blockFromJSON(b *api.BlockResponse) (*node.Block, error) {
	hj := b.Header
	t, err := time.Parse(time.RFC3339Nano, hj.Time)
	if err != nil {
		return nil, fmt.Errorf("header time %q: %w", hj.Time, err)
	}
	var hdr node.Header
	hdr.ChainID, hdr.Height, hdr.Time, hdr.Proposer = hj.ChainID, hj.Height, t.UnixMilli(), hj.Proposer
	for _, f := range []struct {
		s   string
		dst *state.Hash
	}{{hj.PrevHash, &hdr.PrevHash}, {hj.StateRoot, &hdr.StateRoot}, {hj.TxsHash, &hdr.TxsHash}, {hj.EvidenceHash, &hdr.EvidenceHash}, {hj.ReceiptsRoot, &hdr.ReceiptsRoot}} {
		if f.s == "" {
			continue
		}
		if *f.dst, err = state.ParseHash(f.s); err != nil {
			return nil, fmt.Errorf("header hash %q: %w", f.s, err)
		}
	}
	hdr.Leader, hdr.Version = hj.Leader, hj.Version
	for _, sk := range hj.LeaderSkips {
		until, err := time.Parse(time.RFC3339Nano, sk.Until)
		if err != nil {
			return nil, fmt.Errorf("leader skip until %q: %w", sk.Until, err)
		}
		hdr.Skips = append(hdr.Skips, node.LeaderSkip{Validator: sk.Validator, Until: until.UnixMilli(), Misses: sk.Misses})
	}
	blk := &node.Block{Header: hdr, Txs: make([][]byte, len(b.Txs))}
	for i, tx := range b.Txs {
		if blk.Txs[i], err = hex.DecodeString(tx); err != nil {
			return nil, fmt.Errorf("transaction %d not hex", i)
		}
	}
	return blk, nil
}

// txAt is where a transaction was committed.
type txAt struct {
	height uint64
	failed bool
}

// indexTxs maps every transaction of the chain to its height, and reports those met twice.
func indexTxs(c *nodeChain) (map[state.Hash]txAt, *Invariant) {
	inv := &Invariant{Name: InvNoDuplicateTxs}
	index := map[state.Hash]txAt{}
	for i, b := range c.blocks {
		if b == nil {
			continue
		}
		h := uint64(i + 1)
		failed := map[string]bool{}
		for _, r := range b.Results {
			failed[r.Hash] = r.Error != ""
		}
		for _, tx := range b.Txs {
			raw, err := hex.DecodeString(tx)
			if err != nil {
				continue // checkHeaders reports it
			}
			th := state.HashTx(raw)
			inv.Checked++
			if prev, ok := index[th]; ok {
				inv.fail("%s at heights %d and %d", short(th.String()), prev.height, h)
				continue
			}
			index[th] = txAt{height: h, failed: failed[th.String()]}
		}
	}
	return index, inv
}

// checkSupply sums the native balances of every account genesis funded or a committed
// transaction named, plus what open native escrows hold, on every node, against genesis's supply.
// There are no fees, and only genesis creates the native currency.
func checkSupply(ctx context.Context, g *node.Genesis, ref *nodeChain, clients []*api.Client, up []int) *Invariant {
	inv := &Invariant{Name: InvSupply}
	var supply uint64
	addrs := map[state.Address]bool{}
	for _, a := range g.Accounts {
		supply += a.Balance
		addrs[a.Address] = true
	}
	var escrows []string
	for _, b := range ref.blocks {
		if b == nil {
			continue
		}
		for _, tx := range b.Txs {
			raw, err := hex.DecodeString(tx)
			if err != nil {
				continue
			}
			t, err := state.DecodeTx(raw)
			if err != nil {
				continue
			}
			addrs[t.Body.From] = true
			switch {
			case t.Body.Transfer != nil:
				addrs[t.Body.Transfer.To] = true
			case t.Body.EscrowCreate != nil && t.Body.EscrowCreate.Asset == "":
				addrs[t.Body.EscrowCreate.Beneficiary] = true
				escrows = append(escrows, t.Body.EscrowCreate.ID)
			}
		}
	}
	list := make([]state.Address, 0, len(addrs))
	for a := range addrs {
		list = append(list, a)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].String() < list[j].String() })
	for _, i := range up {
		c := clients[i]
		inv.Checked++
		sums := make([]uint64, len(list))
		err := forEach(len(list), 8, func(k int) error {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			a, err := c.Account(qctx, list[k].String())
			if errors.Is(err, api.ErrNotFound) {
				return nil
			}
			sums[k] = a.Balance
			return err
		})
		if err != nil {
			inv.fail("%s: reading balances: %v", c.Base(), err)
			continue
		}
		var total uint64
		for _, s := range sums {
			total += s
		}
		for _, id := range escrows {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			e, err := c.Escrow(qctx, id)
			cancel()
			if err == nil && e.Status == state.EscrowOpen && e.Asset == "" {
				total += e.Amount
			}
		}
		if total != supply {
			inv.fail("%s: %d accounts hold %d, genesis supply is %d", c.Base(), len(list), total, supply)
		}
	}
	inv.Note = fmt.Sprintf("%d accounts, genesis supply %d", len(list), supply)
	return inv
}

// checkAcked checks that every transaction the load generator saw committed is still in the
// chain at the height it saw. One seen above the checked height cannot be judged and is skipped.
func checkAcked(acked map[state.Hash]uint64, index map[state.Hash]txAt, upTo uint64) *Invariant {
	inv := &Invariant{Name: InvAckedKept}
	skipped := 0
	for th, h := range acked {
		if h > upTo {
			skipped++
			continue
		}
		inv.Checked++
		at, ok := index[th]
		switch {
		case !ok:
			inv.fail("%s seen committed at height %d, not in the chain", short(th.String()), h)
		case at.height != h:
			inv.fail("%s seen committed at height %d, now at %d", short(th.String()), h, at.height)
		}
	}
	if skipped > 0 {
		inv.Note = fmt.Sprintf("%d seen above the checked height %d, not judged", skipped, upTo)
	}
	return inv
}

// checkTxLookups asks every node for up to n acknowledged transactions by hash: each must answer
// committed at the height the blocks hold it.
func checkTxLookups(ctx context.Context, acked map[state.Hash]uint64, index map[state.Hash]txAt, clients []*api.Client, up []int, heights []uint64, n int) *Invariant {
	inv := &Invariant{Name: InvTxLookups}
	var sample []state.Hash
	for th := range acked {
		if _, ok := index[th]; ok {
			sample = append(sample, th)
		}
	}
	sort.Slice(sample, func(i, j int) bool { return sample[i].String() < sample[j].String() })
	if len(sample) > n {
		step := len(sample) / n
		var s []state.Hash
		for i := 0; i < len(sample) && len(s) < n; i += step {
			s = append(s, sample[i])
		}
		sample = s
	}
	var mu sync.Mutex
	for _, i := range up {
		c := clients[i]
		forEach(len(sample), 8, func(k int) error {
			th := sample[k]
			if index[th].height > heights[i] {
				return nil // above this node's height when checked
			}
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			st, err := c.Tx(qctx, th.String())
			cancel()
			mu.Lock()
			defer mu.Unlock()
			inv.Checked++
			// A transaction whose execution failed is in its block all the same; the API calls
			// it rejected, at that height.
			at, want := index[th], api.TxCommitted
			if at.failed {
				want = api.TxRejected
			}
			switch {
			case err != nil:
				inv.fail("%s: GET /v1/txs/%s: %v", c.Base(), short(th.String()), err)
			case st.Status != want || st.Height != at.height:
				inv.fail("%s: %s is %s at height %d, the blocks hold it (%s) at %d", c.Base(), short(th.String()), st.Status, st.Height, want, at.height)
			}
			return nil
		})
	}
	return inv
}

// nextBlocks is, for each mark, the time to the header time of the first block of c after it
// (-1 when none).
func nextBlocks(c *nodeChain, marks []time.Time) []time.Duration {
	out := make([]time.Duration, len(marks))
	for i, m := range marks {
		out[i] = -1
		for _, b := range c.blocks {
			if b == nil {
				continue
			}
			if t, err := time.Parse(time.RFC3339Nano, b.Header.Time); err == nil && t.After(m) {
				out[i] = t.Sub(m)
				break
			}
		}
	}
	return out
}

// liveness measures the longest gap between block times and the rates, over [since, until)
// (either end open when zero), the rates split at split.
func (r *CheckReport) liveness(c *nodeChain, since, split, until time.Time) {
	var prev, first, last time.Time
	for i, b := range c.blocks {
		if b == nil {
			prev = time.Time{}
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, b.Header.Time)
		if err != nil {
			prev = time.Time{}
			continue
		}
		if !since.IsZero() && t.Before(since) {
			prev = t // the first gap of the span counts from the block before it
			continue
		}
		if !until.IsZero() && !t.Before(until) {
			break
		}
		if !prev.IsZero() && t.Sub(prev) > r.LongestGap {
			r.LongestGap, r.GapEnd = t.Sub(prev), uint64(i+1)
		}
		prev = t
		if first.IsZero() {
			first = t
		}
		last = t
		rates := &r.Before
		if !split.IsZero() && !t.Before(split) {
			rates = &r.After
		}
		rates.Blocks++
		rates.Txs += len(b.Txs)
	}
	if !until.IsZero() && !prev.IsZero() && until.Sub(prev) > r.LongestGap {
		r.LongestGap, r.GapEnd = until.Sub(prev), 0
	}
	from, to := since, until
	if from.IsZero() {
		from = first
	}
	if to.IsZero() {
		to = last
	}
	if split.IsZero() {
		r.Before.From, r.Before.To = from, to
		return
	}
	r.Before.From, r.Before.To = from, split
	r.After.From, r.After.To = split, to
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return strings.TrimSpace(h)
}

// checkNoScoreCuts reads each node's count of peers it disconnected for their gossip score.
func checkNoScoreCuts(ctx context.Context, apis []string, up []int) *Invariant {
	inv := &Invariant{Name: InvNoScoreCuts}
	const metric = "guild_p2p_score_disconnects_total"
	for _, i := range up {
		inv.Checked++
		v, err := fetchMetric(ctx, apis[i], metric)
		switch {
		case err != nil:
			inv.fail("%s: %v", apis[i], err)
		case v > 0:
			inv.fail("%s disconnected %v peers for their score (its log names them: \"peer score below threshold\")", apis[i], v)
		}
	}
	return inv
}

// fetchMetrics reads a node's /metrics text.
func fetchMetrics(ctx context.Context, apiURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(apiURL, "/")+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return string(body), err
}

// fetchMetric reads one unlabelled sample from a node's /metrics.
func fetchMetric(ctx context.Context, apiURL, name string) (float64, error) {
	body, err := fetchMetrics(ctx, apiURL)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("no %s in its metrics", name)
}
