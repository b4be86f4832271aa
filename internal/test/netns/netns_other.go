//go:build !linux

package netns

import (
	"errors"
	"fmt"
	"runtime"
)

func loopbackUp() error { return unsupported() }

func id() (string, error) { return "", unsupported() }

func unsupported() error {
	return fmt.Errorf("netns: %s has no network namespaces: %w", runtime.GOOS, errors.ErrUnsupported)
}

func setSysctl(host, name, value string) error { return unsupported() }
