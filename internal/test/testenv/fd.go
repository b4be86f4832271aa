package testenv

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
)

// OpenFDs counts the descriptors the calling process holds open, from
// /proc/self/fd or, where there is no /proc, /dev/fd. The descriptor it
// opens to read the directory is not counted. Where the OS lists neither
// it returns an error wrapping [errors.ErrUnsupported].
func OpenFDs() (int, error) {
	for _, dir := range []string{"/proc/self/fd", "/dev/fd"} {
		if ents, err := os.ReadDir(dir); err == nil {
			return len(ents) - 1, nil
		}
	}
	return 0, fmt.Errorf("testenv: %s lists no open descriptors: %w", runtime.GOOS, errors.ErrUnsupported)
}

// OpenFDsOf counts the descriptors process pid holds open, from
// /proc/PID/fd (Linux). For the calling process, use [OpenFDs], which does
// not count its own reading of the directory.
func OpenFDsOf(pid int) (int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

// MustOpenFDs is [OpenFDs] for a test that needs the count: where the OS
// cannot tell, it skips t, or fails it under [RequireNetns].
func MustOpenFDs(t testing.TB) int {
	t.Helper()
	n, err := OpenFDs()
	if err != nil {
		SkipOrFail(t, RequireNetns, "cannot count open descriptors: %v", err)
	}
	return n
}

// MustOpenFDsOf is [OpenFDsOf] for a test that needs the count: it fails t
// when the count cannot be read (the process is gone, or there is no /proc).
func MustOpenFDsOf(t testing.TB, pid int) int {
	t.Helper()
	n, err := OpenFDsOf(pid)
	if err != nil {
		t.Fatalf("counting the descriptors of pid %d: %v", pid, err)
	}
	return n
}
