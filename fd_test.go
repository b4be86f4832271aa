package reuseport_test

import (
	"testing"

	"github.com/b93f8b21/reuseport/internal/test/testenv"
)

// openFDs counts this process's open file descriptors, or returns -1
// where the OS does not list them.
func openFDs(t *testing.T) int {
	t.Helper()
	n, err := testenv.OpenFDs()
	if err != nil {
		return -1
	}
	return n
}

// noNewFDsAtEnd counts open descriptors now and fails the test at its
// end, however it ends, if more are open then; what names the work done.
func noNewFDsAtEnd(t *testing.T, what string) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		t.Helper()
		requireNoNewFDs(t, before, what)
	})
}

// requireNoNewFDs fails if more descriptors are open than before, which
// openFDs counted; what names the work done in between.
func requireNoNewFDs(t *testing.T, before int, what string) {
	t.Helper()
	requireFDsWithin(t, before, 0, what)
}

// requireFDsWithin allows slack more descriptors than before, for loops
// long enough that a leak would exceed it many times over.
func requireFDsWithin(t *testing.T, before, slack int, what string) {
	t.Helper()
	if before < 0 {
		t.Logf("cannot count open file descriptors on this OS; not checking %s for leaks", what)
		return
	}
	if after := openFDs(t); after > before+slack {
		t.Errorf("%d file descriptors open before %s, %d after: %d leaked", before, what, after, after-before)
	}
}
