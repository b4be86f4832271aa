package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/nstest"
	"github.com/b93f8b21/reuseport/internal/servercmd/servercmdtest"
)

// outsideRace runs the calling test in this package's test binary built
// without -race, when this one has it, and reports that binary's result as
// the test's: it returns true once that has run (the caller returns at
// once), and false where the caller is to go on with its body.
//
// The restart tests' load clients run in the test binary, and a gRPC
// client that makes a ClientConn per RPC is about 4 times slower with the
// race detector on a loaded 2-core machine (345 against 1,480 RPCs a
// second): too slow to keep connections in flight at each restart, so
// that the controls saw no loss in some runs. What -race would check
// here, the load clients' own code, is the least interesting part; the
// package that does the draining has race-checked tests of its own.
func outsideRace(t *testing.T) bool {
	t.Helper()
	if !raceEnabled || nstest.InChild() {
		return false
	}
	bin := servercmdtest.Build(t, "grpcserver.test", ".", "test", "-c")
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).Round(time.Second).String())
	}
	cmd := exec.Command(bin, args...)
	// The binary runs its tests in this package's directory, as go test
	// would, for buildServer's go build.
	cmd.Dir, _ = os.Getwd()
	out, err := cmd.CombinedOutput()
	text := string(out)
	switch {
	case err != nil:
		t.Fatalf("%s built without -race: %v\n%s", t.Name(), err, text)
	case strings.Contains(text, "--- SKIP: "+t.Name()+" "):
		t.Skipf("skipped when built without -race:\n%s", text)
	case !strings.Contains(text, "--- PASS: "+t.Name()+" "):
		t.Fatalf("the test binary built without -race did not run %s:\n%s", t.Name(), text)
	}
	t.Logf("ran in the test binary built without -race:\n%s", text)
	return true
}
