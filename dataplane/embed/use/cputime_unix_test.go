//go:build unix

package use_test

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process has used (user and system): the benchmarks report work
// per CPU-second, which a busy shared machine disturbs less than wall-clock rates.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
