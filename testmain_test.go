package reuseport_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// envHelper, when set, makes the test binary run the named helper instead
// of the tests: a test starts itself again as a separate process (or as
// another user) that shares a port with it.
const envHelper = "REUSEPORT_TEST_HELPER"

// helperLifetime bounds every helper process, so that none outlives a
// parent that hangs or forgets it.
const helperLifetime = 60 * time.Second

// helpers maps a name to the body of a helper process; files register
// theirs in init. A helper's result is its exit code.
var helpers = map[string]func() int{}

func TestMain(m *testing.M) {
	if name := os.Getenv(envHelper); name != "" {
		os.Exit(runHelper(name))
	}
	os.Exit(m.Run())
}

func runHelper(name string) int {
	h, ok := helpers[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "reuseport test helper: unknown helper %q\n", name)
		return 2
	}
	time.AfterFunc(helperLifetime, func() {
		fmt.Fprintf(os.Stderr, "reuseport test helper %s: still running after %v, giving up\n", name, helperLifetime)
		os.Exit(3)
	})
	return h()
}

// helperCommand returns a command that runs the test binary at path (this
// one when path is empty) as the named helper, with env added to ours,
// killed if ctx ends first.
func helperCommand(ctx context.Context, t *testing.T, path, name string, env ...string) *exec.Cmd {
	t.Helper()
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatalf("finding the test binary to re-run: %v", err)
		}
		path = exe
	}
	cmd := exec.CommandContext(ctx, path)
	// Under the race detector a process with several threads sleeps a
	// second at exit, in case another thread has a race to report.
	race := "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
	cmd.Env = append(append(os.Environ(), envHelper+"="+name, race), env...)
	return cmd
}
