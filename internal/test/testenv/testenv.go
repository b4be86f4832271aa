// Package testenv holds what the tests of this repository share about the
// machine they run on: whether a test that cannot run here skips or fails,
// and how many descriptors a process holds open.
//
// A test that needs something the machine may lack (root, a private
// network namespace, IPv6 loopback, nginx) calls [SkipOrFail] with the
// environment variable that CI sets when it provides that thing. Outside
// CI the test skips with the reason; under CI it fails, so that a test can
// never silently not run where it was meant to.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// Environment variables that turn a skip into a failure. CI sets both.
const (
	// RequireNetns promises a Linux host where tests run as root: private
	// network namespaces, per-namespace sysctls, other users, IPv6
	// loopback, Multipath TCP, a shell, and the go command and Node.js
	// (TestUnsupportedOS runs the root package for js/wasm).
	RequireNetns = "REUSEPORT_REQUIRE_NETNS"
	// RequireTools promises the external programs some tests drive, such
	// as nginx and wrk.
	RequireTools = "REUSEPORT_REQUIRE_TOOLS"
)

// SkipOrFail ends t because something it needs is missing, with the reason
// given by format and args: it fails t when the environment variable env is
// set to a non-empty value, and skips it otherwise.
func SkipOrFail(t testing.TB, env, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv(env) != "" {
		t.Fatalf("%s (%s is set, so this fails instead of skipping)", reason, env)
		return
	}
	t.Skip(reason)
}
