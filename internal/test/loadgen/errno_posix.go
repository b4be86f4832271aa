//go:build !plan9

package loadgen

import "syscall"

// The errnos Classify names. Plan 9 has none (see errno_plan9.go).
var (
	errRefused      error = syscall.ECONNREFUSED
	errReset        error = syscall.ECONNRESET
	errBrokenPipe   error = syscall.EPIPE
	errAddrNotAvail error = syscall.EADDRNOTAVAIL
)
