//go:build !linux

package reuseport

import (
	"errors"
	"fmt"
	"runtime"
)

func migratesRequests() (bool, error) {
	return false, fmt.Errorf("reuseport: %s has no accept-queue migration setting: %w", runtime.GOOS, errors.ErrUnsupported)
}
