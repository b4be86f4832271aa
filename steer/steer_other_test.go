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
	g, err := NewGroup(Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Join(nil)
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), runtime.GOOS) {
		t.Fatalf("Join = %v; want an error wrapping errors.ErrUnsupported that names %s", err, runtime.GOOS)
	}
}
