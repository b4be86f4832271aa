//go:build darwin || freebsd

package handoff_test

import (
	"fmt"
	"os"
)

// runRunAll is the "runall" role, whose tests (systemd_test.go) run on
// Linux only, where systemd is.
func runRunAll() int {
	fmt.Fprintln(os.Stderr, "the runall role runs on Linux only")
	return 2
}
