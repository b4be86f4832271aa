package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/b93f8b21/reuseport/internal/nstest"
)

// envBinary passes the server binary built outside the namespace to the
// test that runs inside it.
const envBinary = "QUICSERVER_TEST_BINARY"

// buildServer makes the server binary, outside the namespace (where the
// module cache is), and without -race, so that the load measures the
// steering and not the race detector, and passes it to the test's
// namespace in the environment.
func buildServer(t *testing.T) {
	t.Helper()
	if nstest.InChild() || os.Getenv(envBinary) != "" {
		return // built by the process that started this one
	}
	t.Setenv(envBinary, build(t, "quicserver", "build"))
}

var (
	buildDir  string // made by TestMain, removed when the tests end
	buildMu   sync.Mutex
	buildDone = make(map[string]string)
)

// build runs go with args ("build" or "test -c") in this package, without
// -race, once per test binary run, and returns the path of the binary,
// which every user may run: the servers run as nobody.
func build(t *testing.T, name string, args ...string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := buildDone[name]; ok {
		return bin
	}
	bin := filepath.Join(buildDir, name)
	cmd := exec.Command("go", append(args, "-o", bin, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	buildDone[name] = bin
	return bin
}

func TestMain(m *testing.M) {
	var err error
	if buildDir, err = os.MkdirTemp("", "quicserver-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The servers run as nobody and must reach the binary.
	if err := os.Chmod(buildDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(buildDir)
	os.Exit(code)
}
