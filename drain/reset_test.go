//go:build !plan9

package drain_test

import "syscall"

// errConnReset is what a read returns after the peer reset the connection.
var errConnReset error = syscall.ECONNRESET
