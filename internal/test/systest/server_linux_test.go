package systest

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

// envBinary passes the example server, built outside the namespace, to the
// test that runs inside it.
const envBinary = "SYSTEST_HTTPSERVER"

func TestMain(m *testing.M) { os.Exit(servercmdtest.RunTests(m)) }

// envShort carries -short to the child nstest.Isolate starts, which runs
// without it.
const envShort = "SYSTEST_SHORT"

// short reports whether go test runs with -short.
func short() bool { return testing.Short() || os.Getenv(envShort) != "" }

// isolate starts a test of this package, as nstest.Isolate does, and
// returns true where the caller returns at once. Before that, it skips a
// test that runs for long (if not 0) under go test -short, and builds the
// example server, with the race detector if these tests have it, for
// serverBin to return in the namespace.
func isolate(t *testing.T, long time.Duration) bool {
	t.Helper()
	if long > 0 && testing.Short() {
		t.Skipf("runs %v; not in -short", long)
	}
	servercmdtest.Binary(t, envBinary, "httpserver", "../../../examples/httpserver", raceFlags...)
	if testing.Short() {
		t.Setenv(envShort, "1")
	}
	return nstest.Isolate(t)
}

// serverBin is the example server isolate built.
func serverBin() string { return os.Getenv(envBinary) }

// start starts an example server with args and waits until it serves.
func start(t *testing.T, args ...string) *servercmdtest.Proc {
	t.Helper()
	return servercmdtest.Start(t, exec.Command(serverBin(), args...))
}

// get sends n requests to addr, each on a new connection, and counts them
// by the pid that answered. Any failed request fails the test.
func get(t *testing.T, addr string, n int) map[int]int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	counts := make(map[int]int)
	for i := range n {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("request %d of %d: %v", i+1, n, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		pid := loadgen.ParsePID(body)
		if err != nil || resp.StatusCode != http.StatusOK || pid == 0 {
			t.Fatalf("request %d of %d: %s %q: %v", i+1, n, resp.Status, body, err)
		}
		counts[pid]++
	}
	return counts
}
