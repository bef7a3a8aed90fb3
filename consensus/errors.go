package consensus

import "errors"

// Sentinel errors. Step, Propose and the Verify functions wrap them with %w and detail, so callers
// test with errors.Is. The p2p layer can score peers by them: ErrStaleHeight, ErrDuplicate,
// ErrFutureHeight, ErrWrongView and ErrFutureView are what an honest but lagging or leading peer
// produces; ErrBadSignature, ErrMalformed and ErrEquivocation are not.
var (
	ErrInvalidConfig      = errors.New("consensus: invalid config")
	ErrMalformed          = errors.New("consensus: malformed message")
	ErrTooLarge           = errors.New("consensus: message too large")
	ErrUnknownValidator   = errors.New("consensus: unknown validator")
	ErrBadSignature       = errors.New("consensus: bad signature")
	ErrNotLeader          = errors.New("consensus: sender is not the leader of this slot")
	ErrStaleHeight        = errors.New("consensus: height already decided")
	ErrFutureHeight       = errors.New("consensus: height too far ahead")
	ErrWrongView          = errors.New("consensus: wrong view")
	ErrInvalidValue       = errors.New("consensus: invalid value")
	ErrEquivocation       = errors.New("consensus: conflicting message from the same validator")
	ErrDuplicate          = errors.New("consensus: duplicate message")
	ErrInvalidCertificate = errors.New("consensus: invalid certificate")
	ErrNoQuorum           = errors.New("consensus: not enough voting power")
	ErrNotRequested       = errors.New("consensus: no proposal was requested for this slot")
	ErrFutureView         = errors.New("consensus: view too far ahead")
)
