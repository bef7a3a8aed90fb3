package consensus

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Scripted scenarios (docs/testing.md's second layer, after raft's datadriven tests): each file in
// testdata/scenarios is a story in PBFT's terms — a leader crashes, messages are lost, a leader
// lies — told as commands, each followed by what the cores did, so a reviewer reads and diffs the
// protocol's behaviour rather than assertions about it. `go test ./consensus -run TestScenarios
// -update` rewrites the expected output after a deliberate change.
//
// File format: a case is one command line, then a line "----", then the expected output up to a
// blank line. Lines starting with '#' before a command are comments, kept by -update.
//
// Commands (nodes are n0..n<N-1>, validator i runs node i; values are "h=<height>;<label>"):
//
//	init n=<N> [timeout=<ticks>] [retransmit=<ticks>]   fresh cores at height 1
//	propose <node> value=<label>                         the node answers its proposal request
//	deliver [from=<nodes>] [to=<nodes>] [type=<types>]   deliver matching pending messages, and
//	                                                     what they cause, until none match
//	drop [from=<nodes>] [to=<nodes>] [type=<types>]      lose matching pending messages
//	tick <k>                                             k ticks on every running node
//	crash <node>                                         the node stops; messages to it are lost
//	crash <node> at=(before-persist|before-send)         it stops at that point of the next Ready
//	                                                     in which it signs something
//	restart <node>                                       a crashed node restarts from its WAL and
//	                                                     its committed blocks, as node.Run does
//	byzantine <node>                                     the core stops; inject speaks for it
//	inject from=<node> type=<type> h=<h> v=<v> (value=<label>|digest=<label>) to=<nodes>
//	                                                     queue a message signed with its key
//
// Output: per node in index order, what it sent, committed, was asked for, rejected (only the
// rejections that say something about the sender) and recorded as evidence, in the order it did
// so; then every node's (height, view). Pending messages form one queue in the order they were
// sent, and deliver takes them in that order, so the output is deterministic.

var updateGolden = flag.Bool("update", false, "rewrite the expected output of testdata/scenarios")

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenario files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			t.Parallel()
			runScriptFile(t, file)
		})
	}
}

// scriptCase is one command and its expected output; pre is the comment and blank lines before it.
type scriptCase struct {
	pre, cmd, want string
	line           int
}

func parseScript(t *testing.T, file string) []scriptCase {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var cases []scriptCase
	var pre []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			continue
		}
		c := scriptCase{pre: strings.Join(pre, "\n"), cmd: l, line: i + 1}
		pre = nil
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: command %q is not followed by ----", file, i+1, l)
		}
		i += 2
		var want []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		c.want = strings.Join(want, "\n")
		cases = append(cases, c)
	}
	return cases
}

func runScriptFile(t *testing.T, file string) {
	cases := parseScript(t, file)
	var sc *script
	var out strings.Builder
	for i, c := range cases {
		if i == 0 && !strings.HasPrefix(c.cmd, "init ") {
			t.Fatalf("%s:%d: a script starts with init", file, c.line)
		}
		var got string
		if strings.HasPrefix(c.cmd, "init ") {
			var err error
			sc, err = newScript(c.cmd)
			if err != nil {
				t.Fatalf("%s:%d: %v", file, c.line, err)
			}
			got = sc.report()
		} else {
			var err error
			got, err = sc.run(c.cmd)
			if err != nil {
				t.Fatalf("%s:%d: %s: %v", file, c.line, c.cmd, err)
			}
		}
		if i > 0 {
			out.WriteString("\n") // the blank line that ends the previous output
		}
		if c.pre != "" {
			out.WriteString(c.pre + "\n")
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n", c.cmd, got)
		for _, b := range sc.broken {
			t.Errorf("%s:%d: %s: %s", file, c.line, c.cmd, b)
		}
		sc.broken = nil
		if !*updateGolden && got != c.want {
			t.Errorf("%s:%d: %s\n--- want\n%s\n--- got\n%s", file, c.line, c.cmd, c.want, got)
		}
	}
	if *updateGolden {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// script drives cores over a network whose every delivery the script decides.
type script struct {
	vals    ValidatorSet
	nodes   []*scriptNode
	pending []scriptMsg
	labels  map[Digest]string
	events  [][]string // per node, for the command being run
	general []string   // events of no node, for the command being run
	// broken lists violated invariants; they fail the test even under -update.
	broken []string
}

type scriptNode struct {
	core      *Core
	app       *testApp
	down      string // "crashed" or "byzantine" when the core no longer runs
	request   *ProposalRequest
	committed []Committed
	// wal is what the node persisted since its last commit (node.commit resets the WAL); signed
	// is everything it ever persisted, by slot, over all its lives, to catch a second digest
	// for one (height, view, type).
	wal                 []Message
	signed              map[slotKey]Digest
	crashAt             string // an armed crash point
	timeout, retransmit int    // ticks, as init set them
}

type scriptMsg struct {
	from, to int
	m        Message
}

func newScript(cmd string) (*script, error) {
	args, err := parseArgs(strings.Fields(cmd)[1:])
	if err != nil {
		return nil, err
	}
	n, err := args.int("n", 4)
	if err != nil {
		return nil, err
	}
	timeout, err := args.int("timeout", 10)
	if err != nil {
		return nil, err
	}
	// No retransmission unless asked: it would fill every tick's output.
	retransmit, err := args.int("retransmit", 1000)
	if err != nil {
		return nil, err
	}
	sc := &script{vals: equalSet(n), labels: make(map[Digest]string), events: make([][]string, n)}
	for i := range n {
		app := &testApp{}
		c, err := New(Config{ChainID: testChain, Validators: sc.vals, Key: keyFor(i), App: app, Height: 1,
			ViewTimeoutTicks: timeout, RetransmitTicks: retransmit})
		if err != nil {
			return nil, err
		}
		sc.nodes = append(sc.nodes, &scriptNode{core: c, app: app, signed: make(map[slotKey]Digest), timeout: timeout, retransmit: retransmit})
	}
	for i := range sc.nodes {
		sc.drain(i)
	}
	return sc, nil
}

// run executes one command and reports what happened.
func (sc *script) run(cmd string) (string, error) {
	f := strings.Fields(cmd)
	args, err := parseArgs(f[1:])
	if err != nil {
		return "", err
	}
	switch f[0] {
	case "propose":
		err = sc.propose(args)
	case "deliver", "drop":
		err = sc.deliver(args, f[0] == "drop")
	case "tick":
		err = sc.tick(args)
	case "crash", "byzantine":
		err = sc.stop(args, f[0])
	case "restart":
		err = sc.restart(args)
	case "inject":
		err = sc.inject(args)
	default:
		err = fmt.Errorf("unknown command %q", f[0])
	}
	if err != nil {
		return "", err
	}
	return sc.report(), nil
}

func (sc *script) propose(a scriptArgs) error {
	i, err := a.node(sc, 0)
	if err != nil {
		return err
	}
	nd := sc.nodes[i]
	if nd.request == nil {
		return fmt.Errorf("n%d was not asked to propose", i)
	}
	label, ok := a.kv["value"]
	if !ok {
		return errors.New("propose needs value=<label>")
	}
	p := nd.request
	nd.request = nil
	value := sc.value(p.Height, label)
	if err := nd.core.Propose(p.Height, p.View, value); err != nil {
		sc.note(i, "cannot propose: %v", err)
	}
	sc.drain(i)
	return nil
}

// deliver hands matching pending messages to their recipients (or drops them), first in, first
// out, including those sent meanwhile, until none match.
func (sc *script) deliver(a scriptArgs, drop bool) error {
	match, err := a.filter(sc)
	if err != nil {
		return err
	}
	done := 0
	for steps := 0; ; steps++ {
		if steps > 100000 {
			return errors.New("deliver does not settle")
		}
		k := slices.IndexFunc(sc.pending, match)
		if k < 0 {
			break
		}
		e := sc.pending[k]
		sc.pending = slices.Delete(sc.pending, k, k+1)
		done++
		if !drop {
			sc.step(e)
		}
	}
	verb := "delivered"
	if drop {
		verb = "dropped"
	}
	sc.general = append(sc.general, verb+" "+plural(done, "message"))
	return nil
}

func (sc *script) step(e scriptMsg) {
	nd := sc.nodes[e.to]
	if nd.down != "" {
		return
	}
	err := nd.core.Step(e.m)
	for _, telling := range []error{ErrEquivocation, ErrNotLeader, ErrInvalidValue, ErrBadSignature, ErrMalformed, ErrInvalidCertificate} {
		if errors.Is(err, telling) {
			sc.note(e.to, "rejects %s from n%d: %v", sc.describe(e.m), e.from, telling)
			break
		}
	}
	sc.drain(e.to)
}

func (sc *script) tick(a scriptArgs) error {
	if len(a.pos) != 1 {
		return errors.New("tick <k>")
	}
	k, err := strconv.Atoi(a.pos[0])
	if err != nil {
		return err
	}
	for range k {
		for i, nd := range sc.nodes {
			if nd.down == "" {
				nd.core.Tick()
				sc.drain(i)
			}
		}
	}
	return nil
}

// stop takes a node's core out of the run: crashed, or Byzantine (inject then speaks for it).
// Whatever was on its way to it is lost.
func (sc *script) stop(a scriptArgs, how string) error {
	i, err := a.node(sc, 0)
	if err != nil {
		return err
	}
	if at, ok := a.kv["at"]; ok {
		if how != "crash" || (at != "before-persist" && at != "before-send") {
			return fmt.Errorf("%s at=%s", how, at)
		}
		sc.nodes[i].crashAt = at
		sc.note(i, "will crash %s, the next time it signs", at)
		return nil
	}
	sc.down(i, map[string]string{"crash": "crashed", "byzantine": "byzantine"}[how])
	return nil
}

func (sc *script) down(i int, how string) {
	sc.nodes[i].down = how
	sc.pending = slices.DeleteFunc(sc.pending, func(e scriptMsg) bool { return e.to == i })
}

// restart brings a crashed node back from what it made durable: its WAL (Config.Restore), its
// last committed blocks (Config.Recent) and the height after them.
func (sc *script) restart(a scriptArgs) error {
	i, err := a.node(sc, 0)
	if err != nil {
		return err
	}
	nd := sc.nodes[i]
	if nd.down != "crashed" {
		return fmt.Errorf("n%d is not crashed", i)
	}
	height := uint64(len(nd.committed)) + 1
	nd.app.applied = height - 1
	c, err := New(Config{ChainID: testChain, Validators: sc.vals, Key: keyFor(i), App: nd.app, Height: height,
		ViewTimeoutTicks: nd.timeout, RetransmitTicks: nd.retransmit, Restore: nd.wal,
		Recent: nd.committed[max(0, len(nd.committed)-MaxFutureHeights):]})
	if err != nil {
		return err
	}
	nd.core, nd.down, nd.request = c, "", nil
	sc.note(i, "restarts at h=%d from its WAL (%s) and %s", height, plural(len(nd.wal), "message"), plural(len(nd.committed), "committed block"))
	sc.drain(i)
	return nil
}

func (sc *script) inject(a scriptArgs) error {
	from, err := a.nodeArg(sc, "from")
	if err != nil {
		return err
	}
	h, err := a.int("h", 1)
	if err != nil {
		return err
	}
	v, err := a.int("v", 0)
	if err != nil {
		return err
	}
	m := Message{Height: uint64(h), View: uint64(v), From: uint32(from)}
	switch a.kv["type"] {
	case "pre-prepare":
		m.Type, m.Value = MsgPrePrepare, sc.value(m.Height, a.kv["value"])
		m.Digest = DigestOf(m.Value)
	case "prepare", "commit":
		m.Type = MsgPrepare
		if a.kv["type"] == "commit" {
			m.Type = MsgCommit
		}
		d, ok := sc.digest(a.kv["digest"])
		if !ok {
			return fmt.Errorf("no value labelled %q", a.kv["digest"])
		}
		m.Digest = d
	default:
		return fmt.Errorf("inject: type %q (pre-prepare, prepare or commit)", a.kv["type"])
	}
	Sign(testChain, keyFor(from), &m)
	to, err := a.nodes(sc, "to")
	if err != nil || to == nil {
		return fmt.Errorf("inject needs to=<nodes>: %v", err)
	}
	for _, j := range to {
		sc.pending = append(sc.pending, scriptMsg{from: from, to: j, m: m})
	}
	sc.note(from, "sends %s to %s", sc.describe(m), nodeList(to))
	return nil
}

// drain handles node i's Ready batches as the node would, recording what it did.
func (sc *script) drain(i int) {
	nd := sc.nodes[i]
	var evs []Evidence
	for nd.down == "" && nd.core.HasReady() {
		rd := nd.core.Ready()
		evs = append(evs, rd.Evidence...)
		if nd.crashAt == "before-persist" && len(rd.Persist) > 0 {
			sc.crashMidReady(i, rd.Persist, "before the WAL has it")
			break
		}
		for _, m := range rd.Persist {
			k := slotKey{m.Height, m.View, m.Type}
			if d, ok := nd.signed[k]; ok && d != m.Digest {
				sc.broken = append(sc.broken, fmt.Sprintf("n%d signed two different %vs for h=%d v=%d", i, m.Type, m.Height, m.View))
			}
			nd.signed[k] = m.Digest
			nd.wal = append(nd.wal, m)
		}
		if nd.crashAt == "before-send" && len(rd.Persist) > 0 {
			sc.crashMidReady(i, rd.Persist, "once the WAL has it, before sending")
			break
		}
		for _, m := range rd.Messages {
			if m.Relayed {
				sc.note(i, "relays n%d's %s", m.From, sc.describe(m))
			} else {
				sc.note(i, "sends %s", sc.describe(m))
			}
			for j := range sc.nodes {
				if j != i && sc.nodes[j].down == "" {
					sc.pending = append(sc.pending, scriptMsg{from: i, to: j, m: m})
				}
			}
		}
		for _, c := range rd.Committed {
			if err := VerifyCertificate(testChain, sc.vals, &c.Certificate); err != nil || c.Certificate.Digest != DigestOf(c.Value) || c.Certificate.Height != c.Height {
				sc.broken = append(sc.broken, fmt.Sprintf("n%d committed h=%d without a valid certificate: %v", i, c.Height, err))
			}
			sc.note(i, "commits h=%d %s (certificate: view %d, %s)", c.Height, sc.label(DigestOf(c.Value)), c.Certificate.View, voters(c.Certificate.Votes))
			nd.app.applied = c.Height
			nd.committed = append(nd.committed, c)
			nd.wal = nil // as node.commit resets the WAL once the block is stored
		}
		if p := rd.Propose; p != nil {
			sc.note(i, "is asked to propose for h=%d v=%d", p.Height, p.View)
			q := *p
			nd.request = &q
		}
		nd.core.Advance()
	}
	for _, ev := range evs {
		sc.note(i, "records evidence: n%d signed %s and %s", ev.First.From, sc.describe(ev.First), sc.describe(ev.Second))
	}
}

// crashMidReady crashes node i while it handles a Ready that signed msgs.
func (sc *script) crashMidReady(i int, msgs []Message, when string) {
	var what []string
	for _, m := range msgs {
		what = append(what, sc.describe(m))
	}
	sc.note(i, "signs %s and crashes %s", strings.Join(what, ", "), when)
	sc.nodes[i].crashAt = ""
	sc.down(i, "crashed")
}

func (sc *script) note(i int, format string, args ...any) {
	sc.events[i] = append(sc.events[i], fmt.Sprintf("n%d ", i)+fmt.Sprintf(format, args...))
}

// report prints and clears the events of the last command, then every node's (height, view),
// and checks that no two nodes committed different values at one height.
func (sc *script) report() string {
	lines := sc.general
	sc.general = nil
	for i := range sc.events {
		lines = append(lines, sc.events[i]...)
		sc.events[i] = nil
	}
	status := []string{"(h, v):"}
	for i, nd := range sc.nodes {
		if nd.down != "" {
			status = append(status, fmt.Sprintf("n%d %s", i, nd.down))
			continue
		}
		st := nd.core.Status()
		status = append(status, fmt.Sprintf("n%d (%d,%d)", i, st.Height, st.View))
	}
	lines = append(lines, strings.Join(status, " "))
	for h := 1; ; h++ {
		var first *Committed
		more := false
		for i, nd := range sc.nodes {
			if len(nd.committed) < h {
				continue
			}
			more = true
			c := &nd.committed[h-1]
			if first == nil {
				first = c
			} else if DigestOf(first.Value) != DigestOf(c.Value) {
				sc.broken = append(sc.broken, fmt.Sprintf("SAFETY: at h=%d n%d committed %s, another node %s", h, i, sc.label(DigestOf(c.Value)), sc.label(DigestOf(first.Value))))
			}
		}
		if !more {
			break
		}
	}
	return strings.Join(lines, "\n")
}

func (sc *script) value(height uint64, label string) []byte {
	v := valueFor(height, label)
	sc.labels[DigestOf(v)] = label
	return v
}

func (sc *script) digest(label string) (Digest, bool) {
	for d, l := range sc.labels {
		if l == label {
			return d, true
		}
	}
	return Digest{}, false
}

func (sc *script) label(d Digest) string {
	if l, ok := sc.labels[d]; ok {
		return l
	}
	return d.String()[:8]
}

// describe names a message by what it says, with values by label.
func (sc *script) describe(m Message) string {
	s := fmt.Sprintf("%v h=%d v=%d", m.Type, m.Height, m.View)
	switch m.Type {
	case MsgPrePrepare, MsgPrepare, MsgCommit:
		return s + " " + sc.label(m.Digest)
	case MsgViewChange:
		if m.Prepared != nil {
			return fmt.Sprintf("%s prepared=%s@v%d", s, sc.label(m.Digest), m.PreparedView)
		}
		return s + " prepared=none"
	case MsgNewView:
		var from []int
		for _, vc := range m.ViewChanges {
			from = append(from, int(vc.From))
		}
		return fmt.Sprintf("%s proposes %s, justified by view changes of %s", s, sc.label(m.Digest), nodeList(from))
	case MsgDecision:
		return fmt.Sprintf("decision h=%d %s", m.Height, sc.label(m.Digest))
	}
	return s
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func voters(votes []Vote) string {
	var ids []int
	for _, v := range votes {
		ids = append(ids, int(v.Validator))
	}
	return "commits of " + nodeList(ids)
}

func nodeList(ids []int) string {
	var s []string
	for _, i := range ids {
		s = append(s, fmt.Sprintf("n%d", i))
	}
	return strings.Join(s, ",")
}

// scriptArgs are a command's positional and key=value arguments.
type scriptArgs struct {
	pos []string
	kv  map[string]string
}

func parseArgs(fields []string) (scriptArgs, error) {
	a := scriptArgs{kv: make(map[string]string)}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			a.pos = append(a.pos, f)
			continue
		}
		if _, dup := a.kv[k]; dup {
			return a, fmt.Errorf("argument %s given twice", k)
		}
		a.kv[k] = v
	}
	return a, nil
}

func (a scriptArgs) int(key string, def int) (int, error) {
	v, ok := a.kv[key]
	if !ok {
		return def, nil
	}
	return strconv.Atoi(v)
}

func parseNode(sc *script, s string) (int, error) {
	i, err := strconv.Atoi(strings.TrimPrefix(s, "n"))
	if err != nil || i < 0 || i >= len(sc.nodes) {
		return 0, fmt.Errorf("no node %q", s)
	}
	return i, nil
}

// node is positional argument k, a node.
func (a scriptArgs) node(sc *script, k int) (int, error) {
	if len(a.pos) <= k {
		return 0, errors.New("missing node argument")
	}
	return parseNode(sc, a.pos[k])
}

func (a scriptArgs) nodeArg(sc *script, key string) (int, error) {
	v, ok := a.kv[key]
	if !ok {
		return 0, fmt.Errorf("missing %s=<node>", key)
	}
	return parseNode(sc, v)
}

// nodes is a comma-separated node list; nil if the key is absent.
func (a scriptArgs) nodes(sc *script, key string) ([]int, error) {
	v, ok := a.kv[key]
	if !ok {
		return nil, nil
	}
	var out []int
	for _, s := range strings.Split(v, ",") {
		i, err := parseNode(sc, s)
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, nil
}

// filter matches pending messages by from=, to= and type=.
func (a scriptArgs) filter(sc *script) (func(scriptMsg) bool, error) {
	from, err := a.nodes(sc, "from")
	if err != nil {
		return nil, err
	}
	to, err := a.nodes(sc, "to")
	if err != nil {
		return nil, err
	}
	var types []MsgType
	if v, ok := a.kv["type"]; ok {
		for _, s := range strings.Split(v, ",") {
			t := slices.IndexFunc([]MsgType{MsgPrePrepare, MsgPrepare, MsgCommit, MsgDecision, MsgViewChange, MsgNewView},
				func(t MsgType) bool { return t.String() == s })
			if t < 0 {
				return nil, fmt.Errorf("no message type %q", s)
			}
			types = append(types, MsgType(t+1))
		}
	}
	for k := range a.kv {
		if k != "from" && k != "to" && k != "type" {
			return nil, fmt.Errorf("unknown argument %s", k)
		}
	}
	return func(e scriptMsg) bool {
		return (from == nil || slices.Contains(from, e.from)) && (to == nil || slices.Contains(to, e.to)) &&
			(types == nil || slices.Contains(types, e.m.Type))
	}, nil
}
