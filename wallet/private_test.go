package wallet

import (
	"bytes"
	"errors"
	"testing"
)

func TestPrivateSealUnsealAndRotation(t *testing.T) {
	ks, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ks.WorkFactor = 10
	for _, n := range []string{"org1", "org2", "org3"} {
		if _, err := ks.Create(n, "pw-"+n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ks.EncryptionIdentities("org2", "pw-org2"); !errors.Is(err, ErrNoEncryptionKey) {
		t.Fatalf("before any key: %v", err)
	}
	old, err := ks.NewEncryptionKey("org2", "pw-org2")
	if err != nil {
		t.Fatal(err)
	}
	r3, err := ks.NewEncryptionKey("org3", "pw-org3")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("the price is 42")
	ct, c, err := Seal(msg, []string{old})
	if err != nil {
		t.Fatal(err)
	}
	// Rotation keeps the old identity, so what was sent to the old key still opens.
	cur, err := ks.NewEncryptionKey("org2", "pw-org2")
	if err != nil || cur == old {
		t.Fatalf("rotation: %q %v", cur, err)
	}
	if rs, _ := ks.EncryptionRecipients("org2"); len(rs) != 2 || rs[1] != cur {
		t.Fatalf("recipients %v", rs)
	}
	if _, err := ks.EncryptionIdentities("org2", "wrong"); !errors.Is(err, ErrBadPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	ids2, err := ks.EncryptionIdentities("org2", "pw-org2")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Unseal(ct, c, ids2); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("unseal: %q %v", got, err)
	}
	ids3, _ := ks.EncryptionIdentities("org3", "pw-org3")
	if _, err := Unseal(ct, c, ids3); err == nil {
		t.Fatal("a non-recipient decrypted the payload")
	}
	tampered := bytes.Clone(ct)
	tampered[len(tampered)-1] ^= 1
	if _, err := Unseal(tampered, c, ids2); !errors.Is(err, ErrCommitment) {
		t.Fatalf("tampered: %v", err)
	}
	_ = r3
	// The encryption keys are no wallet keys.
	if es, err := ks.List(); err != nil || len(es) != 3 {
		t.Fatalf("list: %v %v", es, err)
	}
}
