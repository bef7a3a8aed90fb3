package consensus

import (
	"bytes"
	"errors"
	"testing"
)

// strictApp refuses as a proposal any value containing "bad", but, as a DecisionChecker, adopts a
// certified value whatever it holds.
type strictApp struct {
	testApp
	decisions int
}

var errBadProposal = errors.New("strict app: a correct leader would not propose this")

func (a *strictApp) CheckProposal(height uint64, value []byte) error {
	if bytes.Contains(value, []byte("bad")) {
		return errBadProposal
	}
	return a.testApp.CheckProposal(height, value)
}

func (a *strictApp) CheckDecision(height uint64, value []byte) error {
	a.decisions++
	return a.testApp.CheckProposal(height, value)
}

// A value the application refuses as a proposal is still adopted when it comes certified: a
// DecisionChecker judges decisions, CheckProposal only proposals.
func TestDecisionCheckerJudgesCertifiedValues(t *testing.T) {
	app := &strictApp{}
	c, err := New(Config{ChainID: testChain, Validators: equalSet(4), App: app, Height: 1, Key: keyFor(0)})
	if err != nil {
		t.Fatal(err)
	}
	bad := valueFor(1, "bad")
	wantErr(t, c.Step(signed(MsgPrePrepare, 1, 0, 1, bad, Digest{})), ErrInvalidValue, errBadProposal)
	if app.decisions != 0 {
		t.Fatal("a proposal went to CheckDecision")
	}
	wantErr(t, c.Step(DecisionMessage(3, Committed{Height: 1, Value: bad, Certificate: certFor(1, 0, bad, 1, 2, 3)})))
	rd := c.Ready()
	if app.decisions != 1 || len(rd.Committed) != 1 || !bytes.Equal(rd.Committed[0].Value, bad) {
		t.Fatalf("certified value not adopted: %d decisions checked, Ready %+v", app.decisions, rd.Committed)
	}
}
