package wallet

import "testing"

func TestPassphraseFromEnv(t *testing.T) {
	t.Setenv(PassphraseEnv, "from-env")
	for _, confirm := range []bool{false, true} {
		p, err := Passphrase("Passphrase: ", confirm)
		if err != nil || p != "from-env" {
			t.Fatalf("Passphrase(confirm=%v) = %q, %v", confirm, p, err)
		}
	}
}
