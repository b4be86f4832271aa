//go:build unix

package handoff

import "golang.org/x/sys/unix"

func unixRights(fds []int) ([]byte, error) { return unix.UnixRights(fds...), nil }
