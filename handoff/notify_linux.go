package handoff

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock systemd
// compares MONOTONIC_USEC with.
func monotonicUsec() (int64, bool) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0, false
	}
	return ts.Nano() / 1000, true
}

// sameUnit reports whether process pid is in this process's cgroup, which
// under systemd is its unit: only such a process may become the unit's
// main process.
func sameUnit(pid int) bool {
	mine, err := os.ReadFile("/proc/self/cgroup")
	if err != nil || len(mine) == 0 {
		return false
	}
	theirs, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	return err == nil && string(theirs) == string(mine)
}
