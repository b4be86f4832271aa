//go:build !(darwin || freebsd || linux)

package handoff_test

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/b93f8b21/reuseport/handoff"
)

func TestUnsupported(t *testing.T) {
	h, err := handoff.Start(context.Background(), handoff.Config{Path: filepath.Join(t.TempDir(), "h.sock")})
	if h != nil || !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), runtime.GOOS) {
		t.Fatalf("Start: %v, %v; want an error wrapping errors.ErrUnsupported naming %s", h, err, runtime.GOOS)
	}
}
