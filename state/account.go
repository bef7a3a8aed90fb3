package state

// Account is an account's state: its native-currency balance and the nonce its next transaction
// must carry.
type Account struct {
	Balance uint64 `cbor:"1,keyasint"`
	Nonce   uint64 `cbor:"2,keyasint"`
}

// GenesisAccount funds an address at height 0.
type GenesisAccount struct {
	Address Address
	Balance uint64
}
