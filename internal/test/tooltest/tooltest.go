// Package tooltest lets a test that needs an external program, such as
// nginx or wrk, skip where the program is missing, except where the
// environment says it must be there: CI installs the programs and sets
// [EnvRequire], so that a test needing them can never silently not run.
package tooltest

import (
	"errors"
	"testing"

	"github.com/b93f8b21/reuseport/internal/test/testenv"
)

// EnvRequire, when set to a non-empty value, turns "a program is missing"
// from a skip into a failure.
const EnvRequire = testenv.RequireTools

// Need calls each of available (such as nginx.Available) and, if any
// reports a program missing, fails the test when [EnvRequire] is set and
// skips it otherwise, giving the reasons either way (see
// [testenv.SkipOrFail]).
func Need(t testing.TB, available ...func() error) {
	t.Helper()
	var errs []error
	for _, f := range available {
		errs = append(errs, f())
	}
	err := errors.Join(errs...)
	if err == nil {
		return
	}
	testenv.SkipOrFail(t, EnvRequire, "%v", err)
}
