//go:build !linux

package reuseport

import (
	"errors"
	"fmt"
	"runtime"
)

// TCP_FASTOPEN and TCP_DEFER_ACCEPT are Linux options; other systems either
// lack them or give them other meanings (FreeBSD's TCP_FASTOPEN takes no
// queue length), so they are refused rather than guessed.

func setFastOpen(uintptr, int) error { return errLinuxOnly("TCP_FASTOPEN") }

func setDeferAccept(uintptr, int) error { return errLinuxOnly("TCP_DEFER_ACCEPT") }

func errLinuxOnly(option string) error {
	return fmt.Errorf("reuseport: %s is set on Linux only, not on %s: %w", option, runtime.GOOS, errors.ErrUnsupported)
}
