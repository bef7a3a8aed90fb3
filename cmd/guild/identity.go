package main

// `guild identity …`: people, organizations and devices, bound to keys.

import (
	"github.com/urfave/cli/v2"

	"github.com/guild-ledger/guild/node/api"
	"github.com/guild-ledger/guild/state"
	"github.com/guild-ledger/guild/wallet"
)

func identityCommand() *cli.Command {
	return &cli.Command{
		Name:  "identity",
		Usage: "identities of people, organizations and devices: register, show",
		Subcommands: []*cli.Command{
			{
				Name: "register", Usage: "register an identity controlled by the sender", ArgsUsage: "ID",
				Flags: txFlags(
					&cli.StringFlag{Name: "kind", Usage: "person, organization or device", Value: state.KindPerson},
					&cli.StringFlag{Name: "name", Usage: "display `NAME`"},
					&cli.StringSliceFlag{Name: "key", Usage: "a public key bound to the identity: 64 `HEX` characters or a wallet key NAME (repeatable; default: the --from key)"},
					&cli.StringFlag{Name: "owner", Usage: "a device's owner: the `ID` of an organization identity the sender controls"},
				),
				Action: func(c *cli.Context) error {
					id, err := argID(c, "ID")
					if err != nil {
						return err
					}
					var keys [][]byte
					for _, k := range c.StringSlice("key") {
						pk, err := resolvePubKey(c, k)
						if err != nil {
							return err
						}
						keys = append(keys, pk)
					}
					env, err := newTxEnv(c)
					if err != nil {
						return err
					}
					if len(keys) == 0 {
						keys = [][]byte{env.signer.PubKey}
					}
					return sendOp(c, env, "identity", id, func(h wallet.Header) (state.TxBody, error) {
						return wallet.IdentityRegister(h, state.IdentityRegister{ID: id, Kind: c.String("kind"),
							Name: c.String("name"), Keys: keys, Owner: c.String("owner")})
					})
				},
			},
			{
				Name: "show", Usage: "show an identity: kind, controller, keys, owner", ArgsUsage: "ID",
				Flags:  queryFlags(),
				Action: showByID("identity", (*api.Client).Identity),
			},
		},
	}
}
