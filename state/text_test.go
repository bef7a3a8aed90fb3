package state

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestAddressText(t *testing.T) {
	a := newTestKey(1).addr
	s := a.String()
	if len(s) != 53 || !strings.HasPrefix(s, AddressPrefix) {
		t.Fatalf("text form %q", s)
	}
	for _, in := range []string{s, strings.ToUpper(s), "  " + s + "\n"} {
		got, err := ParseAddress(in)
		if err != nil || got != a {
			t.Fatalf("ParseAddress(%q) = %x, %v", in, got, err)
		}
	}
	typo := []byte(s)
	if typo[10] == '0' {
		typo[10] = '1'
	} else {
		typo[10] = '0'
	}
	if _, err := ParseAddress(string(typo)); !errors.Is(err, ErrAddressChecksum) {
		t.Fatalf("mistyped address: %v", err)
	}
	for _, bad := range []string{"", "guild", s[:52], s + "0", "xyzzy" + s[5:], s[:20] + "zz" + s[22:]} {
		if _, err := ParseAddress(bad); !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseAddress(%q) = %v, want ErrBadAddress", bad, err)
		}
	}
	j, err := json.Marshal(struct{ A Address }{a})
	if err != nil {
		t.Fatal(err)
	}
	var back struct{ A Address }
	if err := json.Unmarshal(j, &back); err != nil || back.A != a {
		t.Fatalf("JSON round trip: %s -> %x, %v", j, back.A, err)
	}
	if a.IsZero() || !(Address{}).IsZero() {
		t.Fatal("IsZero")
	}
}

func TestHashText(t *testing.T) {
	h := HashTx([]byte("x"))
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var back Hash
	if err := json.Unmarshal(j, &back); err != nil || back != h {
		t.Fatalf("JSON round trip: %s, %v", j, err)
	}
	for _, bad := range []string{"", "00", h.String() + "00", strings.Repeat("zz", 32)} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
}
