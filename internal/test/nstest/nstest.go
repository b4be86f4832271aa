// Package nstest runs a test in a private network namespace, so that it may
// set per-namespace sysctls (net.ipv4.tcp_migrate_req) and load loopback
// without touching the host's settings.
//
// Usage, first thing in a test:
//
//	if nstest.Isolate(t) {
//		return // the body ran in a child process, in its own namespace
//	}
//
// Isolate re-executes the test binary for this one test with CLONE_NEWNET
// (and a user namespace when not root), brings lo up there, and reports the
// child's result as this test's. Under qemu-user, which runs the test
// binaries of other CPUs and refuses namespace flags in clone(2), the
// unshare(1) program of the host makes the namespace instead. Where
// namespaces cannot be made the test is skipped with the reason, unless the
// environment variable [EnvRequire] is set (CI sets it), in which case it
// fails; so is a test that skips inside its namespace.
package nstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/netns"
	"github.com/b93f8b21/reuseport/internal/test/testenv"
)

// EnvRequire, when set to a non-empty value, turns "namespaces are not
// available here", and a skip inside the namespace, into a failure.
const EnvRequire = testenv.RequireNetns

// The parent passes these to the child it re-executes.
const (
	envChild     = "REUSEPORT_NSTEST_CHILD"      // the test to run in the namespace
	envHostNetns = "REUSEPORT_NSTEST_HOST_NETNS" // the parent's namespace (netns.ID), which SetSysctl refuses to write in
)

// Isolate runs the calling test in a fresh network namespace. It returns
// true in the parent once the child has finished (the caller returns at
// once), and false in the child, where the caller goes on with its body.
func Isolate(t testing.TB) (parent bool) {
	t.Helper()
	if os.Getenv(envChild) == t.Name() {
		if err := netns.LoopbackUp(); err != nil {
			t.Fatalf("nstest: bringing lo up in the new namespace: %v", err)
		}
		return false
	}
	if InChild() {
		t.Fatalf("nstest: %s is already inside the namespace of %s; Isolate only the outermost test", t.Name(), os.Getenv(envChild))
	}
	if reason := unavailable(); reason != "" {
		testenv.SkipOrFail(t, EnvRequire, "nstest: needs a private network namespace: %s", reason)
		return true
	}
	host, err := netns.ID()
	if err != nil {
		testenv.SkipOrFail(t, EnvRequire, "nstest: cannot name this process's network namespace: %v", err)
		return true
	}

	args := []string{"-test.run=" + runPattern(t.Name()), "-test.count=1", "-test.v"}
	if d, ok := deadline(t); ok {
		args = append(args, "-test.timeout="+time.Until(d).Round(time.Second).String())
	}
	cmd := exec.Command(os.Args[0], args...)
	// The race runtime sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), envChild+"="+t.Name(), envHostNetns+"="+host, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.SysProcAttr = sysProcAttr()
	// One namespace child at a time, across the packages go test runs in
	// parallel: these are the tests that load loopback hard, and two at
	// once on a small machine starve each other into timeouts.
	unlock := lockMachine(t)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil && errors.Is(err, syscall.EINVAL) {
		// clone(2) refused the namespace flags, as qemu-user does for
		// every test binary of another CPU it runs.
		if alt, aerr := viaUnshare(cmd); aerr == nil {
			t.Logf("nstest: %v (qemu-user refuses namespace flags in clone); making the namespace with %s", err, alt.Path)
			cmd = alt
			out, err = cmd.CombinedOutput()
		}
	}
	unlock()
	text := string(out)
	switch {
	case err != nil && cmd.ProcessState == nil:
		testenv.SkipOrFail(t, EnvRequire, "nstest: cannot start a child in a new network namespace: %v", err)
	case err != nil:
		t.Fatalf("nstest: %s failed in its namespace (%v, after %v):\n%s", t.Name(), err, time.Since(start).Round(time.Millisecond), text)
	case strings.Contains(text, "--- SKIP: "+t.Name()+" "):
		testenv.SkipOrFail(t, EnvRequire, "nstest: skipped in its namespace:\n%s", text)
	case !strings.Contains(text, "--- PASS: "+t.Name()+" "):
		t.Fatalf("nstest: the child did not run %s:\n%s", t.Name(), text)
	}
	if testing.Verbose() {
		t.Logf("ran in a private network namespace:\n%s", text)
	}
	return true
}

// InChild reports whether this process is a child made by Isolate.
func InChild() bool { return os.Getenv(envChild) != "" }

// SetSysctl writes a sysctl of the test's own namespace, such as
// "net/ipv4/tcp_migrate_req", and reads it back (see [netns.SetSysctl]).
// It refuses outside a child made by Isolate, and in a child that is still
// in its parent's namespace, so that a test can never change the host.
func SetSysctl(name, value string) error {
	if !InChild() {
		return fmt.Errorf("nstest: refusing to set %s outside a private namespace", name)
	}
	return netns.SetSysctl(os.Getenv(envHostNetns), name, value)
}

func deadline(t testing.TB) (time.Time, bool) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		return d.Deadline()
	}
	return time.Time{}, false
}

// runPattern matches exactly one test or subtest name.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
