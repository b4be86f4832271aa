//go:build !plan9

package reuseport_test

import "syscall"

// The bind errors the tests expect, named once so that the tests also
// compile for Plan 9, which has no errno values.
var (
	errAddrInUse    error = syscall.EADDRINUSE
	errAddrNotAvail error = syscall.EADDRNOTAVAIL
)
