//go:build unix

package node

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process has used, user and system. Benchmarks report CPU per
// operation next to wall time because the shared development machines are often loaded, which
// inflates wall time but barely changes CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
