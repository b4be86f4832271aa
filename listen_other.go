//go:build !(aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package reuseport

import "runtime"

// Windows, Plan 9, Solaris and illumos, js/wasm and wasip1 have no
// SO_REUSEPORT (x/sys/unix defines none for Solaris or illumos). Windows has
// SO_REUSEADDR, but it lets any process take over a port in use, so it is
// never set here.
func setReusePort(uintptr, bool, bool) error { return errUnsupportedOS(runtime.GOOS) }

func setFastOpen(uintptr, int) error { return errLinuxOnly("TCP_FASTOPEN", runtime.GOOS) }

func setDeferAccept(uintptr, int) error { return errLinuxOnly("TCP_DEFER_ACCEPT", runtime.GOOS) }

func probe() Capability { return Capability{Err: errUnsupportedOS(runtime.GOOS)} }
