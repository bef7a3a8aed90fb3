package consensus

import (
	"errors"
	"math"
	"math/rand"
	"testing"
)

func TestIsQuorum(t *testing.T) {
	const max = math.MaxUint64
	tests := []struct {
		name   string
		powers []uint64
		power  uint64
		want   bool
	}{
		{"4 equal, 2 votes", []uint64{1, 1, 1, 1}, 2, false},
		{"4 equal, 3 votes", []uint64{1, 1, 1, 1}, 3, true},
		{"3 equal, exactly 2/3 is not more", []uint64{1, 1, 1}, 2, false},
		{"3 equal, all", []uint64{1, 1, 1}, 3, true},
		{"7 equal, 4", []uint64{1, 1, 1, 1, 1, 1, 1}, 4, false},
		{"7 equal, 5", []uint64{1, 1, 1, 1, 1, 1, 1}, 5, true},
		{"unequal: 18 of 28", []uint64{1, 2, 3, 4, 5, 6, 7}, 18, false},
		{"unequal: 19 of 28", []uint64{1, 2, 3, 4, 5, 6, 7}, 19, true},
		{"one heavy validator alone", []uint64{10, 1, 1, 1}, 10, true},
		{"single validator", []uint64{5}, 5, true},
		{"zero power", []uint64{1}, 0, false},
		// power*3 and total*2 overflow 64 bits here; the 128-bit comparison must not.
		{"huge: just over 2/3", []uint64{max / 3, max / 3, max / 3}, max/3*2 + 1, true},
		{"huge: exactly 2/3", []uint64{max / 3, max / 3, max / 3}, max / 3 * 2, false},
		{"huge: total max, all", []uint64{max}, max, true},
		{"huge: total max, 2/3 rounded down", []uint64{max}, max / 3 * 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := testSet(tt.powers...)
			if got := vs.IsQuorum(tt.power); got != tt.want {
				t.Errorf("IsQuorum(%d) of %d = %v, want %v", tt.power, vs.TotalPower(), got, tt.want)
			}
		})
	}
}

// Any two quorums overlap in more than a third of the power: the property PBFT's safety rests on.
func TestQuorumsIntersect(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for range 2000 {
		n := 1 + rng.Intn(9)
		powers := make([]uint64, n)
		for i := range powers {
			powers[i] = 1 + uint64(rng.Intn(20))
		}
		vs := ValidatorSet{Validators: make([]Validator, n)}
		for i, p := range powers {
			vs.Validators[i].Power = p
		}
		total := vs.TotalPower()
		a, b := rng.Intn(1<<n), rng.Intn(1<<n)
		var pa, pb, both uint64
		for i, p := range powers {
			inA, inB := a&(1<<i) != 0, b&(1<<i) != 0
			if inA {
				pa += p
			}
			if inB {
				pb += p
			}
			if inA && inB {
				both += p
			}
		}
		if vs.IsQuorum(pa) && vs.IsQuorum(pb) && both*3 <= total {
			t.Fatalf("powers %v: quorums %b and %b share only %d of %d", powers, a, b, both, total)
		}
	}
}

func TestTotalPowerSaturates(t *testing.T) {
	vs := ValidatorSet{Validators: []Validator{{Power: math.MaxUint64}, {Power: 1}}}
	if got := vs.TotalPower(); got != math.MaxUint64 {
		t.Fatalf("TotalPower = %d, want saturation", got)
	}
	if err := vs.validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("validate = %v, want ErrInvalidConfig", err)
	}
}

func TestLeaderRotates(t *testing.T) {
	vs := equalSet(4)
	for h := uint64(0); h < 12; h++ {
		if got := vs.Leader(h, 0); got != uint32(h%4) {
			t.Errorf("Leader(%d, 0) = %d", h, got)
		}
		if got := vs.Leader(h, 1); got != uint32((h+1)%4) {
			t.Errorf("Leader(%d, 1) = %d", h, got)
		}
	}
	// (2^64-1 + 2^64-1) mod 4 = (3 + 3) mod 4, computed without overflow.
	if got := vs.Leader(math.MaxUint64, math.MaxUint64); got != 2 {
		t.Errorf("Leader(max, max) = %d, want 2", got)
	}
	if got := (ValidatorSet{}).Leader(5, 5); got != 0 {
		t.Errorf("empty set Leader = %d", got)
	}
}

func TestVerifyCertificate(t *testing.T) {
	value := valueFor(3, "block")
	equal := equalSet(4)
	unequal := testSet(10, 1, 1, 1) // total 13: validator 0 alone holds 10 > 8.67
	tests := []struct {
		name string
		vals ValidatorSet
		cert func() *Certificate
		want []error // nil: valid
	}{
		{"valid, 3 of 4", equal, func() *Certificate { c := certFor(3, 0, value, 0, 1, 3); return &c }, nil},
		{"valid, all 4", equal, func() *Certificate { c := certFor(3, 0, value, 0, 1, 2, 3); return &c }, nil},
		{"valid, view 2", equal, func() *Certificate { c := certFor(3, 2, value, 1, 2, 3); return &c }, nil},
		{"power-weighted: heavy validator alone", unequal, func() *Certificate { c := certFor(3, 0, value, 0); return &c }, nil},
		{"power-weighted: three light ones are not enough", unequal, func() *Certificate { c := certFor(3, 0, value, 1, 2, 3); return &c },
			[]error{ErrInvalidCertificate, ErrNoQuorum}},
		{"too little power", equal, func() *Certificate { c := certFor(3, 0, value, 0, 1); return &c },
			[]error{ErrInvalidCertificate, ErrNoQuorum}},
		{"no votes", equal, func() *Certificate { c := certFor(3, 0, value); return &c },
			[]error{ErrInvalidCertificate, ErrNoQuorum}},
		{"duplicate vote padding a quorum", equal, func() *Certificate { c := certFor(3, 0, value, 0, 1, 1); return &c },
			[]error{ErrInvalidCertificate, ErrDuplicate}},
		{"more votes than validators", equal, func() *Certificate { c := certFor(3, 0, value, 0, 1, 2, 3, 3); return &c },
			[]error{ErrInvalidCertificate, ErrDuplicate}},
		{"votes out of order", equal, func() *Certificate { c := certFor(3, 0, value, 2, 0, 1); return &c },
			[]error{ErrInvalidCertificate, ErrMalformed}},
		{"unknown validator", equal, func() *Certificate {
			c := certFor(3, 0, value, 0, 1, 2)
			c.Votes = append(c.Votes, Vote{Validator: 4, Sig: c.Votes[0].Sig})
			return &c
		}, []error{ErrInvalidCertificate, ErrUnknownValidator}},
		{"bad signature", equal, func() *Certificate {
			c := certFor(3, 0, value, 0, 1, 2)
			c.Votes[1].Sig = append([]byte(nil), c.Votes[1].Sig...)
			c.Votes[1].Sig[5] ^= 1
			return &c
		}, []error{ErrInvalidCertificate, ErrBadSignature}},
		{"signature of another validator", equal, func() *Certificate {
			c := certFor(3, 0, value, 0, 1, 2)
			c.Votes[2].Sig = c.Votes[0].Sig
			return &c
		}, []error{ErrInvalidCertificate, ErrBadSignature}},
		{"short signature", equal, func() *Certificate {
			c := certFor(3, 0, value, 0, 1, 2)
			c.Votes[0].Sig = c.Votes[0].Sig[:10]
			return &c
		}, []error{ErrInvalidCertificate, ErrBadSignature}},
		{"wrong digest", equal, func() *Certificate {
			c := certFor(3, 0, value, 0, 1, 2)
			c.Digest = DigestOf(valueFor(3, "other"))
			return &c
		}, []error{ErrInvalidCertificate, ErrBadSignature}},
		{"wrong height", equal, func() *Certificate { c := certFor(3, 0, value, 0, 1, 2); c.Height = 4; return &c },
			[]error{ErrInvalidCertificate, ErrBadSignature}},
		{"wrong view", equal, func() *Certificate { c := certFor(3, 0, value, 0, 1, 2); c.View = 1; return &c },
			[]error{ErrInvalidCertificate, ErrBadSignature}},
		{"prepares are not commits", equal, func() *Certificate {
			c := certFor(3, 0, value, 0, 1, 2)
			for i := range c.Votes {
				c.Votes[i].Sig = signed(MsgPrepare, 3, 0, int(c.Votes[i].Validator), nil, c.Digest).Sig
			}
			return &c
		}, []error{ErrInvalidCertificate, ErrBadSignature}},
		{"nil certificate", equal, func() *Certificate { return nil }, []error{ErrInvalidCertificate, ErrMalformed}},
		{"empty validator set", ValidatorSet{}, func() *Certificate { c := certFor(3, 0, value, 0, 1, 2); return &c },
			[]error{ErrInvalidCertificate}},
		{"validator set whose power overflows", testSet(math.MaxUint64, 1, 1, 1), func() *Certificate { c := certFor(3, 0, value, 0); return &c },
			[]error{ErrInvalidCertificate}},
		{"malformed public key does not panic", ValidatorSet{Validators: []Validator{{PubKey: []byte{1, 2}, Power: 1}}},
			func() *Certificate { c := certFor(3, 0, value, 0); return &c }, []error{ErrInvalidCertificate, ErrBadSignature}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyCertificate(testChain, tt.vals, tt.cert())
			if tt.want == nil {
				if err != nil {
					t.Fatalf("VerifyCertificate = %v, want nil", err)
				}
				return
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("VerifyCertificate = %v, want %v", err, w)
				}
			}
		})
	}
	// Another chain's certificate is worthless here.
	c := certFor(3, 0, value, 0, 1, 2)
	if err := VerifyCertificate("other-chain", equal, &c); !errors.Is(err, ErrBadSignature) {
		t.Errorf("certificate from another chain: %v, want ErrBadSignature", err)
	}
}
