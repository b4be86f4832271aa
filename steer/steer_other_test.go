//go:build !linux

package steer

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// TestThisOSIsUnsupported checks what a program built for this OS gets.
func TestThisOSIsUnsupported(t *testing.T) {
	_, err := NewGroup(Config{}).Join(nil)
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), runtime.GOOS) {
		t.Fatalf("Join = %v; want an error wrapping errors.ErrUnsupported that names %s", err, runtime.GOOS)
	}
}
