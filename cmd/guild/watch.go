package main

// `guild watch`: tail a node's event stream (GET /v1/events), resuming by itself after a
// reconnect, on the same node or the next one of --node, from the last event ID it saw.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
)

// watchMaxBackoff caps the pause before trying the nodes again once all of them failed.
const watchMaxBackoff = 5 * time.Second

var errWatchDone = errors.New("watch: enough events")

func watchCommand() *cli.Command {
	return &cli.Command{
		Name:  "watch",
		Usage: "print committed blocks, transactions and evidence as they happen",
		UsageText: "guild watch [--from H | --after ID] [--account NAME|ADDRESS] [--item ID] [--asset SYMBOL]\n" +
			"            [--kinds block,tx,governance,evidence] [--limit N] [--json] [--node URL[,URL...]]\n\n" +
			"Each event has an ID HEIGHT-POSITION (position 0 is the block, then its transactions, then its\n" +
			"evidence). If the connection breaks, watch reconnects by itself, to the next node of --node if\n" +
			"several are given, and resumes right after the last event it printed: nothing is missed or\n" +
			"printed twice. Without --from or --after it starts at the next block. With --account, --item\n" +
			"or --asset it prints only the transactions that touch them (add --kinds block,tx,governance to\n" +
			"see blocks as well). --json prints one JSON object per line: {\"id\", \"type\", \"data\"}.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "node", Usage: "`URL`s of nodes' HTTP APIs, comma-separated: the next is used when one fails",
				EnvVars: []string{walletNodeEnv}, Value: walletDefaultNode},
			&cli.Uint64Flag{Name: "from", Usage: "start at block `H` (history is read from the node's store)"},
			&cli.StringFlag{Name: "after", Usage: "resume after the event with this `ID` (HEIGHT-POSITION)"},
			&cli.StringFlag{Name: "account", Usage: "only transactions touching this account: `NAME|ADDRESS` (a wallet key or an address)"},
			&cli.StringFlag{Name: "item", Usage: "only operations on the item with this `ID`"},
			&cli.StringFlag{Name: "asset", Usage: "only operations on the asset with this `SYMBOL`"},
			&cli.StringFlag{Name: "kinds", Usage: "event kinds to print, `LIST` of block, tx, governance, evidence"},
			&cli.IntFlag{Name: "limit", Usage: "exit after `N` events (0: never)"},
			&cli.DurationFlag{Name: "idle-timeout", Usage: "reconnect when a node sends nothing, not even a keep-alive, for this `DURATION`",
				Value: time.Minute},
			walletDirFlag(), walletJSONFlag(),
		},
		Action: watch,
	}
}

func watch(c *cli.Context) error {
	if c.NArg() != 0 {
		return walletExit("guild watch takes no arguments, only flags; see `guild watch --help`", walletExitBadUsage)
	}
	var nodes []string
	for _, u := range strings.Split(c.String("node"), ",") {
		if u = strings.TrimSpace(u); u != "" {
			nodes = append(nodes, u)
		}
	}
	if len(nodes) == 0 {
		return walletExit("--node needs at least one URL", walletExitBadUsage)
	}
	if c.IsSet("from") && c.IsSet("after") {
		return walletExit("give --from or --after, not both", walletExitBadUsage)
	}
	if a := c.String("after"); a != "" {
		if _, err := api.ParseEventID(a); err != nil {
			return walletExit(err.Error(), walletExitBadUsage)
		}
	}
	q := api.EventsQuery{
		Item: c.String("item"), Asset: c.String("asset"), FromHeight: c.Uint64("from"),
		After: c.String("after"), IdleTimeout: c.Duration("idle-timeout"),
	}
	if k := c.String("kinds"); k != "" {
		q.Kinds = strings.Split(k, ",")
	}
	if a := c.String("account"); a != "" {
		addr, _, err := walletResolve(c, a)
		if err != nil {
			return err
		}
		q.Account = addr.String()
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()

	limit, printed := c.Int("limit"), 0
	show := func(ev api.StreamEvent) error {
		if err := watchPrint(c.App.Writer, ev, c.Bool("json")); err != nil {
			return err
		}
		if printed++; limit > 0 && printed >= limit {
			return errWatchDone
		}
		return nil
	}
	backoff, failedInRow := 200*time.Millisecond, 0
	for i := 0; ; i = (i + 1) % len(nodes) {
		client := api.NewClient(nodes[i])
		before := printed
		last, err := client.Events(ctx, q, show)
		if last != "" {
			q.After = last // the resume point, on this node or any other of the chain
		}
		switch {
		case errors.Is(err, errWatchDone), ctx.Err() != nil:
			return nil
		case watchFatal(err):
			return walletNodeFail(client, err)
		}
		// A stream that delivered something was healthy: start the count of failures again.
		if printed > before || last != "" {
			failedInRow, backoff = 0, 200*time.Millisecond
		}
		failedInRow++
		next := nodes[(i+1)%len(nodes)]
		fmt.Fprintf(c.App.ErrWriter, "guild: watch: %s: %v; resuming %s on %s\n", client.Base(), err, watchResume(q), next)
		if failedInRow >= len(nodes) { // every node failed in a row: pause before the next round
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, watchMaxBackoff)
		}
	}
}

func watchResume(q api.EventsQuery) string {
	switch {
	case q.After != "":
		return "after " + q.After
	case q.FromHeight > 0:
		return fmt.Sprintf("from block %d", q.FromHeight)
	}
	return "from the next block"
}

// watchFatal: the node refused the request itself (a bad filter): no other node will accept it.
func watchFatal(err error) bool {
	var apiErr *api.Error
	return errors.As(err, &apiErr) && apiErr.Status >= 400 && apiErr.Status < 500 &&
		apiErr.Status != http.StatusTooManyRequests && apiErr.Status != http.StatusNotFound
}

func watchPrint(w io.Writer, ev api.StreamEvent, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var line string
	switch ev.Type {
	case api.EventBlock:
		var b api.BlockEventJSON
		if err := json.Unmarshal(ev.Data, &b); err != nil {
			return err
		}
		line = fmt.Sprintf("height %d  %d txs  proposer %s  hash %s", b.Height, b.Txs, walletOr(b.Proposer, fmt.Sprint(b.ProposerIndex)), short(b.Hash))
		if b.Evidence > 0 {
			line += fmt.Sprintf("  %d evidence", b.Evidence)
		}
	case api.EventTx, api.EventGovernance:
		var t api.TxEventJSON
		if err := json.Unmarshal(ev.Data, &t); err != nil {
			return err
		}
		line = fmt.Sprintf("%s %s  from %s  hash %s", walletOr(t.Op, "?"), t.Status, walletOr(t.From, "?"), short(t.Hash))
		if t.Item != "" {
			line += "  item " + t.Item
		}
		if t.Asset != "" {
			line += "  asset " + t.Asset
		}
		if others := len(t.Accounts) - 1; others > 0 {
			line += "  touches " + strings.Join(t.Accounts[1:], ",")
		}
		if t.Error != "" {
			line += "  error: " + t.Error
		}
	case api.EventEvidence:
		var e api.EvidenceJSON
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			return err
		}
		line = fmt.Sprintf("validator %s equivocated: %s at height %d view %d", walletOr(e.Validator, fmt.Sprint(e.ValidatorIndex)), e.Type, e.Height, e.View)
	default:
		line = string(ev.Data)
	}
	_, err := fmt.Fprintf(w, "%-10s %-10s %s\n", ev.ID, ev.Type, line)
	return err
}

func short(hash string) string {
	if len(hash) > 16 {
		return hash[:16]
	}
	return hash
}
