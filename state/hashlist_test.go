package state

import (
	"bytes"
	"errors"
	"testing"
)

// HashList must encode exactly as the codec encodes []Hash (a proposal by reference's bytes are
// the same whichever wrote them) and decode what it encodes.
func TestHashListMatchesCodec(t *testing.T) {
	for _, n := range []int{0, 1, 23, 24, 255, 256, 1440, 65535} {
		plain := make([]Hash, n)
		for i := range plain {
			plain[i] = HashTx([]byte{byte(i), byte(i >> 8)})
		}
		want, err := Marshal(plain)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Marshal(HashList(plain))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d hashes: encoding differs from the codec's (err %v)", n, err)
		}
		var back HashList
		if err := Unmarshal(want, &back); err != nil || len(back) != n || back == nil {
			t.Fatalf("%d hashes: decoded %d, nil %v, err %v", n, len(back), back == nil, err)
		}
		for i := range back {
			if back[i] != plain[i] {
				t.Fatalf("%d hashes: element %d differs", n, i)
			}
		}
	}
	var nilList HashList
	enc, err := Marshal(nilList)
	want, _ := Marshal([]Hash(nil))
	if err != nil || !bytes.Equal(enc, want) {
		t.Fatalf("nil list: %x, codec %x (err %v)", enc, want, err)
	}
	back := HashList{}
	if err := Unmarshal(enc, &back); err != nil || back != nil {
		t.Fatalf("null decoded to %v (err %v)", back, err)
	}
}

// What is not an array of 32-byte byte strings is refused with ErrHashList, inside a struct as
// on its own, and a count larger than the bytes is refused before anything is allocated.
func TestHashListRefusesOtherShapes(t *testing.T) {
	h := HashTx([]byte("x"))
	short := append([]byte{0x81, 0x58, 31}, h[:31]...)
	long := append(append([]byte{0x81, 0x58, 33}, h[:]...), 0)
	textStr := append([]byte{0x81, 0x78, 32}, h[:]...)
	noHead := append([]byte{0x81}, h[:]...)
	huge := []byte{0x9a, 0x10, 0, 0, 0, 0x58, 32} // 2^28 elements claimed
	cases := map[string][]byte{
		"map": {0xa0}, "byte string": append([]byte{0x58, 32}, h[:]...), "31-byte hash": short,
		"33-byte hash": long, "text string": textStr, "no head": noHead, "huge count": huge,
		"count above elements": append([]byte{0x82, 0x58, 32}, h[:]...),
	}
	for name, data := range cases {
		var l HashList
		if err := l.UnmarshalCBOR(data); !errors.Is(err, ErrHashList) {
			t.Errorf("%s: err %v, want ErrHashList", name, err)
		}
		var s struct {
			L HashList `cbor:"1,keyasint"`
		}
		if err := Unmarshal(append([]byte{0xa1, 0x01}, data...), &s); err == nil {
			t.Errorf("%s: decoded inside a struct", name)
		}
	}
}

// BenchmarkHashListDecode: the hashes of a proposal by reference of 1,440 transactions, by the
// codec into []Hash and by HashList.
func BenchmarkHashListDecode(b *testing.B) {
	plain := make([]Hash, 1440)
	for i := range plain {
		plain[i] = HashTx([]byte{byte(i), byte(i >> 8)})
	}
	enc, err := Marshal(plain)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("codec", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var out []Hash
			if err := Unmarshal(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("HashList", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var out HashList
			if err := Unmarshal(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
