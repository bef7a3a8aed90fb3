package state

import (
	"bytes"
	"unicode/utf8"
)

// Transfers are nearly every transaction a node takes in, and the generic decoder plus the
// re-encoding that checks canonical form cost several microseconds each (reflection, about ten
// allocations): as much as the batched signature check. decodeTransferTx reads exactly the
// canonical encoding of a transfer and nothing else, in one allocation; anything it does not
// recognise goes the generic way (DecodeTx), which also gives the errors. It parses the shape
// leniently and then requires the bytes to equal appendTransferTx of what it read, which is the
// generic encoder's output for the same Tx (TestDecodeTransferTxMatchesGeneric): so it accepts
// only canonical bytes, and returns what Unmarshal would have returned for them.

// transferTx is a transfer and, for the usual single signer, its signature, allocated together.
type transferTx struct {
	tx   Tx
	tr   Transfer
	sigs [1]Signature
	keys [32 + 64]byte
}

// decodeTransferTx decodes raw if it is the canonical encoding of a transaction whose one
// operation is a Transfer, signed by 1..MaxSigners keys of 32 bytes with 64-byte signatures.
func decodeTransferTx(raw []byte) (*Tx, bool) {
	// a2 01 <body: a4 01 tstr 02 bstr(20) 03 uint 04 a2 01 bstr(20) 02 uint> 02 <array of sigs>
	if len(raw) < 2 || raw[0] != 0xa2 || raw[1] != 0x01 {
		return nil, false
	}
	p := 2
	if p >= len(raw) || raw[p] != 0xa4 {
		return nil, false
	}
	p++
	if p >= len(raw) || raw[p] != 0x01 {
		return nil, false
	}
	p++
	n, l, ok := readCBORHead(raw[p:], 3)
	if !ok || uint64(len(raw)-p-l) < n {
		return nil, false
	}
	p += l
	chain := raw[p : p+int(n)]
	p += int(n)
	if !utf8.Valid(chain) { // the generic decoder refuses invalid UTF-8 in a text string
		return nil, false
	}
	var from, to Address
	if p+2+AddressLen > len(raw) || raw[p] != 0x02 || raw[p+1] != 0x40|AddressLen {
		return nil, false
	}
	copy(from[:], raw[p+2:])
	p += 2 + AddressLen
	if p >= len(raw) || raw[p] != 0x03 {
		return nil, false
	}
	p++
	nonce, l, ok := readCBORUint(raw[p:])
	if !ok {
		return nil, false
	}
	p += l
	if p+5+AddressLen > len(raw) || raw[p] != 0x04 || raw[p+1] != 0xa2 || raw[p+2] != 0x01 || raw[p+3] != 0x40|AddressLen {
		return nil, false
	}
	copy(to[:], raw[p+4:])
	p += 4 + AddressLen
	if raw[p] != 0x02 {
		return nil, false
	}
	p++
	amount, l, ok := readCBORUint(raw[p:])
	if !ok {
		return nil, false
	}
	p += l
	if p >= len(raw) || raw[p] != 0x02 {
		return nil, false
	}
	p++
	count, l, ok := readCBORHead(raw[p:], 4)
	if !ok || count == 0 || count > MaxSigners {
		return nil, false
	}
	p += l
	const sigLen = 2 + 2 + 32 + 1 + 2 + 64 // a2 01 5820 <key> 02 5840 <sig>
	if uint64(len(raw)-p) != count*sigLen {
		return nil, false
	}
	t := new(transferTx)
	t.tr = Transfer{To: to, Amount: amount}
	t.tx.Body = TxBody{ChainID: string(chain), From: from, Nonce: nonce, Transfer: &t.tr}
	sigs := t.sigs[:0]
	keys := t.keys[:0]
	if count > uint64(len(t.sigs)) {
		sigs = make([]Signature, 0, count)
		keys = make([]byte, 0, count*96)
	}
	for i := uint64(0); i < count; i++ {
		s := raw[p : p+sigLen]
		if s[0] != 0xa2 || s[1] != 0x01 || s[2] != 0x58 || s[3] != 32 || s[36] != 0x02 || s[37] != 0x58 || s[38] != 64 {
			return nil, false
		}
		k := len(keys)
		keys = append(keys, s[4:36]...)
		keys = append(keys, s[39:103]...)
		// Full slice expressions: an append to one never runs into the next.
		sigs = append(sigs, Signature{PubKey: keys[k : k+32 : k+32], Sig: keys[k+32 : k+96 : k+96]})
		p += sigLen
	}
	t.tx.Sigs = sigs
	// The exactness check: the bytes must be the canonical encoding of what was read.
	var buf [512]byte
	if !bytes.Equal(appendTransferTx(buf[:0], &t.tx), raw) {
		return nil, false
	}
	return &t.tx, true
}

// appendTransferTx appends the canonical encoding of tx, a transaction whose one operation is a
// Transfer and whose every key and signature is non-nil: the bytes Marshal(tx) gives.
func appendTransferTx(dst []byte, tx *Tx) []byte {
	dst = append(dst, 0xa2, 0x01)
	dst = appendTransferBody(dst, &tx.Body)
	dst = append(dst, 0x02)
	dst = AppendCBORHead(dst, 4, uint64(len(tx.Sigs)))
	for i := range tx.Sigs {
		s := &tx.Sigs[i]
		dst = append(dst, 0xa2, 0x01)
		dst = AppendCBORHead(dst, 2, uint64(len(s.PubKey)))
		dst = append(dst, s.PubKey...)
		dst = append(dst, 0x02)
		dst = AppendCBORHead(dst, 2, uint64(len(s.Sig)))
		dst = append(dst, s.Sig...)
	}
	return dst
}

// appendTransferBody appends the canonical encoding of b, whose one operation is a Transfer.
func appendTransferBody(dst []byte, b *TxBody) []byte {
	dst = append(dst, 0xa4, 0x01)
	dst = AppendCBORHead(dst, 3, uint64(len(b.ChainID)))
	dst = append(dst, b.ChainID...)
	dst = append(dst, 0x02, 0x40|AddressLen)
	dst = append(dst, b.From[:]...)
	dst = append(dst, 0x03)
	dst = appendCBORUint(dst, b.Nonce)
	dst = append(dst, 0x04, 0xa2, 0x01, 0x40|AddressLen)
	dst = append(dst, b.Transfer.To[:]...)
	dst = append(dst, 0x02)
	return appendCBORUint(dst, b.Transfer.Amount)
}

// readCBORHead reads a head of the given major type from the start of b: its argument and length.
func readCBORHead(b []byte, major byte) (uint64, int, bool) {
	if len(b) == 0 || b[0]>>5 != major {
		return 0, 0, false
	}
	c := [9]byte{}
	n := copy(c[:], b)
	c[0] &= 0x1f
	return readCBORUint(c[:n])
}
