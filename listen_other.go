//go:build !(aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package reuseport

import (
	"errors"
	"fmt"
	"runtime"
)

// Windows, Plan 9, Solaris and illumos, js/wasm and wasip1 have no
// SO_REUSEPORT (x/sys/unix defines none for Solaris or illumos). Windows has
// SO_REUSEADDR, but it lets any process take over a port in use, so it is
// never set here.
func setReusePort(uintptr, bool, bool) error { return errUnsupportedOS(runtime.GOOS) }

func probe() Capability { return Capability{Err: errUnsupportedOS(runtime.GOOS)} }

// errUnsupportedOS is what every call returns where ports cannot be shared.
func errUnsupportedOS(goos string) error {
	return fmt.Errorf("reuseport: sockets cannot share a port on %s: %w", goos, errors.ErrUnsupported)
}
