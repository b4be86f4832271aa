package reuseport

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Linux balances any group, so listening needs no option beyond
// SO_REUSEPORT, and a kernel that accepts it balances.
const (
	soReusePortLB = -1
	balances      = true
)

// reusePortError is setsockopt(SO_REUSEPORT)'s error: kernels before 3.9
// have no such option.
func reusePortError(err error) error {
	if errors.Is(err, unix.ENOPROTOOPT) {
		return fmt.Errorf("reuseport: this kernel has no SO_REUSEPORT (Linux 3.9 or later has): %w (%w)",
			errors.ErrUnsupported, os.NewSyscallError("setsockopt SO_REUSEPORT", err))
	}
	return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
}
