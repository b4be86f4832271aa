//go:build !linux

package handoff

// systemd runs on Linux only: elsewhere no process shares a unit.

func monotonicUsec() (int64, bool) { return 0, false }

func sameUnit(int) bool { return false }
