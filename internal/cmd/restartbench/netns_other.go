//go:build !linux

package main

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
)

func newNetns(*exec.Cmd) error {
	return fmt.Errorf("%s has no network namespaces, in which this benchmark sets tcp_migrate_req: %w", runtime.GOOS, errors.ErrUnsupported)
}
