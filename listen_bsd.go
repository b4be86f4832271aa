//go:build aix || darwin || dragonfly || freebsd || netbsd || openbsd

package reuseport

import "os"

// reusePortError is setsockopt(SO_REUSEPORT)'s error.
func reusePortError(err error) error { return os.NewSyscallError("setsockopt SO_REUSEPORT", err) }
