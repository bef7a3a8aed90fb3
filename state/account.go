package state

// Account is an account's state: its native-currency balance, the nonce its next transaction
// must carry, and whether it is controlled by a signer set (see multisig.go) rather than by the
// key whose hash is its address. Asset balances are separate records (see asset.go), so that the
// transfer path reads and writes nothing but this.
type Account struct {
	Balance  uint64 `cbor:"1,keyasint" json:"balance"`
	Nonce    uint64 `cbor:"2,keyasint" json:"nonce"`
	Multisig bool   `cbor:"3,keyasint,omitempty" json:"multisig,omitempty"`
}

// GenesisAccount funds an address at height 0.
type GenesisAccount struct {
	Address Address
	Balance uint64
}
