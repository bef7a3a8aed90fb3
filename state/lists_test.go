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

// SplitByteStrings reads what the codec and the hand-written batch encoders write exactly as the
// codec decodes it into a [][]byte, without copying, and each string's capacity ends with it.
func TestSplitByteStringsMatchesCodec(t *testing.T) {
	for _, lens := range [][]int{{1}, {0, 1, 23, 24, 25}, {255, 256, 65535, 65536, 3}, make([]int, 300)} {
		raws := make([][]byte, len(lens))
		for i, l := range lens {
			raws[i] = bytes.Repeat([]byte{byte(i + 1)}, l)
		}
		enc, err := Marshal(raws)
		if err != nil {
			t.Fatal(err)
		}
		var want [][]byte
		if err := Unmarshal(enc, &want); err != nil {
			t.Fatal(err)
		}
		got, err := SplitByteStrings(enc, len(lens))
		if err != nil || len(got) != len(want) {
			t.Fatalf("lengths %v: %d strings, err %v", lens, len(got), err)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) || cap(got[i]) != len(got[i]) {
				t.Fatalf("lengths %v: string %d differs (cap %d)", lens, i, cap(got[i]))
			}
		}
		if _, err := SplitByteStrings(enc, len(lens)-1); !errors.Is(err, ErrByteStrings) {
			t.Fatalf("lengths %v: more than max taken: %v", lens, err)
		}
	}
}

// Anything but one definite-length array of definite-length byte strings is refused.
func TestSplitByteStringsRefusesOtherShapes(t *testing.T) {
	cases := map[string][]byte{
		"empty input":          {},
		"map":                  {0xa0},
		"byte string":          {0x41, 0x01},
		"text string element":  {0x81, 0x61, 'a'},
		"array element":        {0x81, 0x81, 0x41, 0x01},
		"null element":         {0x81, 0xf6},
		"indefinite array":     {0x9f, 0x41, 0x01, 0xff},
		"indefinite string":    {0x81, 0x5f, 0x41, 0x01, 0xff},
		"trailing bytes":       {0x81, 0x41, 0x01, 0x00},
		"string past the end":  {0x81, 0x45, 0x01},
		"count past the end":   {0x83, 0x41, 0x01},
		"huge string length":   {0x81, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"huge count":           {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"truncated count head": {0x99, 0x01},
	}
	for name, data := range cases {
		if got, err := SplitByteStrings(data, 1<<16); !errors.Is(err, ErrByteStrings) {
			t.Errorf("%s: %d strings, err %v; want ErrByteStrings", name, len(got), err)
		}
	}
}

// BenchmarkSplitByteStrings: a gossip batch of 256 transfers (184 bytes each), by the codec into
// a [][]byte and by SplitByteStrings.
func BenchmarkSplitByteStrings(b *testing.B) {
	raws := make([][]byte, 256)
	for i := range raws {
		raws[i] = bytes.Repeat([]byte{byte(i)}, 184)
	}
	enc, err := Marshal(raws)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("codec", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var out [][]byte
			if err := Unmarshal(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(raws)), "ns/tx")
	})
	b.Run("split", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := SplitByteStrings(enc, len(raws)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(raws)), "ns/tx")
	})
}
