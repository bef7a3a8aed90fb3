package state

import "fmt"

// TxBody's encoding, written by hand for speed: the generic encoder visits all of TxBody's
// operation fields, nil or not, for every transaction it encodes (DecodeTx re-encodes each
// transaction to check that it is canonical, and SignBytes encodes the body again), which made
// adding the operations of issue 4 cost the transfer path about a tenth of a microsecond per
// field. The bytes are exactly those of the generic core-deterministic encoding of the same
// struct (TestTxBodyCodecMatchesGeneric checks it for every operation): a map of the set fields
// in ascending key order, keys 1..22 each one byte (30 and up two bytes), ChainID a text string, From a 20-byte byte
// string, Nonce an integer, and each operation as the generic encoder encodes it.

// MarshalCBOR implements cbor.Marshaler.
func (b TxBody) MarshalCBOR() ([]byte, error) {
	// Converting a pointer to an interface does not allocate; checking 19 of them is cheap.
	ops := [...]struct {
		key byte
		set bool
		v   any
	}{
		{4, b.Transfer != nil, b.Transfer},
		{5, b.SetSigners != nil, b.SetSigners},
		{6, b.AssetCreate != nil, b.AssetCreate},
		{7, b.AssetMint != nil, b.AssetMint},
		{8, b.AssetBurn != nil, b.AssetBurn},
		{9, b.AssetTransfer != nil, b.AssetTransfer},
		{10, b.ItemRegister != nil, b.ItemRegister},
		{11, b.ItemTransfer != nil, b.ItemTransfer},
		{12, b.NotaryAnchor != nil, b.NotaryAnchor},
		{13, b.EscrowCreate != nil, b.EscrowCreate},
		{14, b.EscrowRelease != nil, b.EscrowRelease},
		{15, b.EscrowRefund != nil, b.EscrowRefund},
		{16, b.IdentityRegister != nil, b.IdentityRegister},
		{17, b.ClaimIssue != nil, b.ClaimIssue},
		{18, b.ClaimRevoke != nil, b.ClaimRevoke},
		{19, b.BallotCreate != nil, b.BallotCreate},
		{20, b.BallotVote != nil, b.BallotVote},
		{21, b.GovPropose != nil, b.GovPropose},
		{22, b.GovVote != nil, b.GovVote},
		{30, b.EncryptionKeySet != nil, b.EncryptionKeySet},
		{31, b.PrivateSend != nil, b.PrivateSend},
		{32, b.PrivateEscrowCreate != nil, b.PrivateEscrowCreate},
		{33, b.PrivateEscrowClose != nil, b.PrivateEscrowClose},
		{34, b.PrivateClaimIssue != nil, b.PrivateClaimIssue},
	}
	n := 0
	for i := range ops {
		if ops[i].set {
			n++
		}
	}
	out := make([]byte, 0, 80+len(b.ChainID))
	out = AppendCBORHead(out, 5, uint64(3+n))
	out = append(out, 0x01)
	out = AppendCBORHead(out, 3, uint64(len(b.ChainID)))
	out = append(out, b.ChainID...)
	out = append(out, 0x02)
	out = AppendCBORHead(out, 2, AddressLen)
	out = append(out, b.From[:]...)
	out = append(out, 0x03)
	out = appendCBORUint(out, b.Nonce)
	for i := range ops {
		if !ops[i].set {
			continue
		}
		enc, err := encMode.Marshal(ops[i].v)
		if err != nil {
			return nil, fmt.Errorf("state: encoding operation %d: %w", ops[i].key, err)
		}
		out = appendCBORUint(out, uint64(ops[i].key)) // one byte up to 23, two from 24
		out = append(out, enc...)
	}
	return out, nil
}

// AppendCBORHead appends a CBOR head of the given major type (0 unsigned integer, 2 byte string,
// 3 text string, 4 array...) and argument, in its shortest form (RFC 8949 §4.2.1): what the
// codec writes, for encoders that write a fixed shape by hand.
func AppendCBORHead(dst []byte, major byte, n uint64) []byte {
	start := len(dst)
	dst = appendCBORUint(dst, n)
	dst[start] |= major << 5
	return dst
}
