//go:build !unix

package state

import "time"

func processCPU() time.Duration { return 0 }

func diskWritten() int64 { return 0 }
