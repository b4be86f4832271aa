package testenv

import (
	"os"
	"strings"
	"testing"
)

// recorder stands in for a test, and records how SkipOrFail ended it.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = format }
func (r *recorder) Skip(args ...any)                  { r.skip = args[0].(string) }

func TestSkipOrFail(t *testing.T) {
	const env = "REUSEPORT_TESTENV_TEST"
	t.Setenv(env, "")
	var r recorder
	SkipOrFail(&r, env, "needs %s", "a thing")
	if r.skip != "needs a thing" || r.fatal != "" {
		t.Errorf("with %s empty: skip %q, fatal %q; want a skip only", env, r.skip, r.fatal)
	}
	t.Setenv(env, "1")
	r = recorder{}
	SkipOrFail(&r, env, "needs %s", "a thing")
	if r.skip != "" || r.fatal == "" {
		t.Errorf("with %s=1: skip %q, fatal %q; want a failure only", env, r.skip, r.fatal)
	}
}

// TestOpenFDs checks that a file opened shows in both counts, and that the
// count of this process by pid differs from OpenFDs only by the
// descriptor reading the directory.
func TestOpenFDs(t *testing.T) {
	before := MustOpenFDs(t)
	f, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	after := MustOpenFDs(t)
	byPID, pidErr := OpenFDsOf(os.Getpid())
	f.Close()
	if after != before+1 {
		t.Errorf("%d descriptors before opening a file, %d after; want one more", before, after)
	}
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		return // no /proc: OpenFDsOf cannot work here
	}
	if pidErr != nil || byPID != after+1 {
		t.Errorf("OpenFDsOf(own pid) = %d, %v; want %d, the directory's own descriptor included", byPID, pidErr, after+1)
	}
	if closed := MustOpenFDs(t); closed != before {
		t.Errorf("%d descriptors after closing the file, want %d", closed, before)
	}
	if _, err := OpenFDsOf(-1); err == nil || !strings.Contains(err.Error(), "-1") {
		t.Errorf("OpenFDsOf(-1) = %v, want an error naming /proc/-1", err)
	}
}
