package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node"
	"github.com/guild-ledger/guild/p2p"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

// genesisCommand is the genesis ceremony: a draft passed from organization to organization as a
// file, each adding its own signed entry, then collected into the genesis every member checks.
func genesisCommand() *cli.Command {
	return &cli.Command{
		Name:  "genesis",
		Usage: "build a consortium's genesis across hosts: new draft, add-org per organization, collect, validate",
		Description: "1. one organization: guild genesis new --chain-id ID --out genesis.draft.json\n" +
			"2. each organization in turn, on its own host: guild genesis add-org --draft genesis.draft.json --home HOME\n" +
			"   --name ORG --announce /dns4/node.org.example/tcp/26656 --account operator=1000000\n" +
			"3. anyone: guild genesis collect --draft genesis.draft.json --out genesis.json\n" +
			"4. every organization: guild genesis validate genesis.json, compare the printed hash with the\n" +
			"   others out of band (phone, signed mail), copy it to HOME/genesis.json, then guild node start.",
		Subcommands: []*cli.Command{
			{
				Name:  "new",
				Usage: "start a genesis draft",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "chain-id", Required: true, Usage: "the chain's ID (in every signature: pick one no other chain uses)"},
					&cli.StringFlag{Name: "out", Value: "genesis.draft.json", Usage: "draft file to write (refused if it exists)"},
					&cli.StringFlag{Name: "genesis-time", Usage: "RFC 3339 time of the genesis (default: now)"},
					&cli.StringSliceFlag{Name: "param", Usage: "NAME=VALUE: a consortium parameter other than its default (repeatable)"},
					&cli.StringFlag{Name: "threshold", Usage: "NUM/DEN of members whose yes votes pass a proposal (default: two thirds)"},
				},
				Action: genesisNew,
			},
			{
				Name:  "add-org",
				Usage: "add this organization's entry to a draft, signed with its validator key",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "draft", Required: true, Usage: "the draft file (updated in place)"},
					homeFlag(),
					&cli.StringFlag{Name: "name", Required: true, Usage: "the organization's name (its validator and member name)"},
					&cli.StringSliceFlag{Name: "announce", Usage: "multiaddr where the other nodes reach this one, e.g. /ip4/203.0.113.7/tcp/26656 (repeatable)"},
					&cli.StringSliceFlag{Name: "account", Usage: "NAME=BALANCE (a key of --wallet) or ADDRESS=BALANCE: an initial account; the first one controls the organization's membership (repeatable)"},
					&cli.Uint64Flag{Name: "power", Value: 1, Usage: "the validator's voting power"},
					&cli.StringFlag{Name: "wallet", Usage: "keystore where --account names are looked up (default: HOME/wallet)"},
				},
				Action: genesisAddOrg,
			},
			{
				Name:  "collect",
				Usage: "check every entry of a draft and write the genesis",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "draft", Required: true, Usage: "the draft file"},
					&cli.StringFlag{Name: "out", Value: node.GenesisFile, Usage: "genesis file to write"},
				},
				Action: func(c *cli.Context) error {
					d, err := node.LoadGenesisDraft(c.String("draft"))
					if err != nil {
						return err
					}
					g, err := d.Collect()
					if err != nil {
						return err
					}
					if err := g.Save(c.String("out")); err != nil {
						return err
					}
					return printGenesisHash(c, c.String("out"), g)
				},
			},
			{
				Name:      "validate",
				Usage:     "check a genesis file and print its hash, which every member compares out of band",
				ArgsUsage: "FILE",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return &usageError{cmd: "guild genesis validate", err: errors.New("want one argument: the genesis file")}
					}
					g, err := node.LoadGenesis(c.Args().First())
					if err != nil {
						return err
					}
					return printGenesisHash(c, c.Args().First(), g)
				},
			},
		},
	}
}

func printGenesisHash(c *cli.Context, path string, g *node.Genesis) error {
	h, err := g.Hash()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: chain %s, %d validators, %d accounts, %d members\ngenesis hash: %s\n",
		path, g.ChainID, len(g.Validators), len(g.Accounts), len(g.Members), h)
	return nil
}

func genesisNew(c *cli.Context) error {
	t := time.Now()
	if s := c.String("genesis-time"); s != "" {
		var err error
		if t, err = time.Parse(time.RFC3339, s); err != nil {
			return fmt.Errorf("--genesis-time: %w", err)
		}
	}
	var params []state.Param
	for _, p := range c.StringSlice("param") {
		name, v, ok := strings.Cut(p, "=")
		val, err := strconv.ParseUint(v, 10, 64)
		if !ok || name == "" || err != nil {
			return fmt.Errorf("--param %q: want NAME=VALUE", p)
		}
		params = append(params, state.Param{Name: name, Value: val})
	}
	var th state.Threshold
	if s := c.String("threshold"); s != "" {
		num, den, ok := strings.Cut(s, "/")
		n, err1 := strconv.ParseUint(num, 10, 32)
		d, err2 := strconv.ParseUint(den, 10, 32)
		if !ok || err1 != nil || err2 != nil || d == 0 || n == 0 || n > d {
			return fmt.Errorf("--threshold %q: want NUM/DEN with 0 < NUM <= DEN", s)
		}
		th = state.Threshold{Num: uint32(n), Den: uint32(d)}
	}
	d, err := node.NewGenesisDraft(c.String("chain-id"), t, params, th)
	if err != nil {
		return err
	}
	out := c.String("out")
	if fileExists(out) {
		return fmt.Errorf("%s exists; refusing to overwrite a draft", out)
	}
	if err := d.Save(out); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %s for chain %s: pass it to each organization for guild genesis add-org\n", out, d.ChainID)
	return nil
}

func genesisAddOrg(c *cli.Context) error {
	home := c.String("home")
	d, err := node.LoadGenesisDraft(c.String("draft"))
	if err != nil {
		return err
	}
	valKey, err := node.LoadKeyFile(filepath.Join(home, node.ValidatorKeyFile))
	if err != nil {
		return err
	}
	nodeKey, err := node.LoadKeyFile(filepath.Join(home, node.NodeKeyFile))
	if err != nil {
		return err
	}
	peerID, err := p2p.PeerIDFromKey(nodeKey)
	if err != nil {
		return err
	}
	e := node.GenesisEntry{Name: c.String("name"), PeerID: peerID, Power: c.Uint64("power"), Announce: c.StringSlice("announce")}
	walletDir := c.String("wallet")
	if walletDir == "" {
		walletDir = filepath.Join(home, "wallet")
	}
	for _, a := range c.StringSlice("account") {
		acc, err := parseGenesisAccount(a, walletDir)
		if err != nil {
			return err
		}
		e.Accounts = append(e.Accounts, acc)
	}
	if err := d.AddOrg(e, valKey); err != nil {
		return err
	}
	if cfg, err := node.LoadConfig(home); err == nil {
		for _, a := range e.Announce {
			if !announcePortListened(a, cfg.P2P.Listen) {
				fmt.Fprintf(c.App.ErrWriter, "note: %s's port is not a port of [p2p] listen in %s (%s): "+
					"fine behind a port-mapping NAT or load balancer, otherwise the other nodes cannot reach this one there\n",
					a, filepath.Join(home, node.ConfigFile), strings.Join(cfg.P2P.Listen, ", "))
			}
		}
	}
	if err := d.Save(c.String("draft")); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "added %s to %s (validator %s…, peer %s, %d announce addresses, %d accounts): "+
		"%d organizations in the draft\n", e.Name, c.String("draft"), d.Orgs[len(d.Orgs)-1].PubKey[:16], peerID,
		len(e.Announce), len(e.Accounts), len(d.Orgs))
	return nil
}

// parseGenesisAccount reads NAME=BALANCE (NAME a key of the keystore in walletDir) or
// ADDRESS=BALANCE.
func parseGenesisAccount(s, walletDir string) (node.GenesisAccount, error) {
	who, bal, ok := strings.Cut(s, "=")
	balance, err := strconv.ParseUint(bal, 10, 64)
	if !ok || who == "" || err != nil {
		return node.GenesisAccount{}, fmt.Errorf("--account %q: want NAME=BALANCE or ADDRESS=BALANCE", s)
	}
	if addr, err := state.ParseAddress(who); err == nil {
		return node.GenesisAccount{Address: addr, Balance: balance}, nil
	}
	ks, err := wallet.Open(walletDir)
	if err != nil {
		return node.GenesisAccount{}, fmt.Errorf("--account %q: not an address, and no keystore in %s: %w", s, walletDir, err)
	}
	entry, err := ks.Get(who)
	if err != nil {
		return node.GenesisAccount{}, fmt.Errorf("--account %q: not an address, nor a key in %s: %w", s, walletDir, err)
	}
	return node.GenesisAccount{Name: who, Address: entry.Address, Balance: balance}, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// announcePortListened reports whether announce's TCP or UDP port is one the node listens on.
func announcePortListened(announce string, listen []string) bool {
	port := func(s string) (string, bool) {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return "", false
		}
		for _, code := range []int{ma.P_TCP, ma.P_UDP} {
			if v, err := m.ValueForProtocol(code); err == nil {
				return v, true
			}
		}
		return "", false
	}
	want, ok := port(announce)
	if !ok {
		return true // no port to compare (checked elsewhere)
	}
	for _, l := range listen {
		if p, ok := port(l); ok && p == want {
			return true
		}
	}
	return false
}
