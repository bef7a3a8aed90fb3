package wallet

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestPrivateSealUnsealAndRotation(t *testing.T) {
	ks, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ks.WorkFactor = 10
	keys := map[string]ed25519.PrivateKey{}
	for _, n := range []string{"org1", "org2", "org3"} {
		if _, err := ks.Create(n, "pw-"+n); err != nil {
			t.Fatal(err)
		}
		if keys[n], err = ks.Load(n, "pw-"+n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ks.EncryptionIdentities("org2", keys["org2"]); !errors.Is(err, ErrNoEncryptionKey) {
		t.Fatalf("before any key: %v", err)
	}
	if _, err := ks.NewEncryptionKey("org2", keys["org3"]); err == nil {
		t.Fatal("org2's encryption key made under org3's key")
	}
	old, err := ks.NewEncryptionKey("org2", keys["org2"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.NewEncryptionKey("org3", keys["org3"]); err != nil {
		t.Fatal(err)
	}
	msg := []byte("the price is 42")
	ct, c, err := Seal(msg, []string{old})
	if err != nil {
		t.Fatal(err)
	}
	// Rotation keeps the old identity, so what was sent to the old key still opens.
	cur, err := ks.NewEncryptionKey("org2", keys["org2"])
	if err != nil || cur == old {
		t.Fatalf("rotation: %q %v", cur, err)
	}
	if rs, _ := ks.EncryptionRecipients("org2"); len(rs) != 2 || rs[1] != cur {
		t.Fatalf("recipients %v", rs)
	}
	if _, err := ks.EncryptionIdentities("org2", keys["org1"]); !errors.Is(err, ErrCorruptKey) {
		t.Fatalf("another key: %v", err)
	}
	ids2, err := ks.EncryptionIdentities("org2", keys["org2"])
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Unseal(ct, c, ids2); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("unseal: %q %v", got, err)
	}
	ids3, _ := ks.EncryptionIdentities("org3", keys["org3"])
	if _, err := Unseal(ct, c, ids3); err == nil {
		t.Fatal("a non-recipient decrypted the payload")
	}
	tampered := bytes.Clone(ct)
	tampered[len(tampered)-1] ^= 1
	if _, err := Unseal(tampered, c, ids2); !errors.Is(err, ErrCommitment) {
		t.Fatalf("tampered: %v", err)
	}
	// The encryption keys are no wallet keys.
	if es, err := ks.List(); err != nil || len(es) != 3 {
		t.Fatalf("list: %v %v", es, err)
	}
}
