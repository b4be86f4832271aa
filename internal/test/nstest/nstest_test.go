package nstest_test

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/b93f8b21/reuseport/internal/test/nstest"
)

// TestIsolate checks the child really is in another network namespace: a
// sysctl set there is not seen by the parent, and loopback works.
func TestIsolate(t *testing.T) {
	host, err := nstest.Sysctl("net/ipv4/tcp_migrate_req")
	if !nstest.InChild() && err == nil {
		t.Setenv("NSTEST_HOST_MIGRATE_REQ", host)
	}
	if nstest.Isolate(t) {
		if after, _ := nstest.Sysctl("net/ipv4/tcp_migrate_req"); after != host {
			t.Fatalf("host tcp_migrate_req changed from %s to %s", host, after)
		}
		return
	}
	want := "1"
	if os.Getenv("NSTEST_HOST_MIGRATE_REQ") == "1" {
		want = "0"
	}
	if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", want); err != nil {
		t.Fatal(err)
	}
	if got, _ := nstest.Sysctl("net/ipv4/tcp_migrate_req"); got != want {
		t.Fatalf("tcp_migrate_req = %s in the namespace, want %s", got, want)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestSetSysctlRefusesOnHost(t *testing.T) {
	if nstest.InChild() {
		t.Skip("meaningful only outside a namespace")
	}
	if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", "1"); err == nil {
		t.Fatal("SetSysctl wrote a host sysctl")
	}
}

// envSkipInside makes TestSkipInsideBody skip in its namespace.
const envSkipInside = "NSTEST_TEST_SKIP_INSIDE"

// TestSkipInsideBody is the body TestSkipInside runs: alone it does
// nothing, and with envSkipInside set it skips inside its namespace.
func TestSkipInsideBody(t *testing.T) {
	if os.Getenv(envSkipInside) == "" {
		return
	}
	if nstest.Isolate(t) {
		return
	}
	t.Skip("skipping inside the namespace")
}

// TestSkipInside checks that a test that skips in its namespace is
// reported as skipped, and as failed when nstest.EnvRequire is set, so
// that CI cannot lose a test to a skip it never sees.
func TestSkipInside(t *testing.T) {
	if nstest.InChild() {
		t.Fatal("TestSkipInside runs only outside a namespace")
	}
	for _, tc := range []struct {
		require string
		want    string
	}{
		{"", "--- SKIP: TestSkipInsideBody "},
		{"1", "--- FAIL: TestSkipInsideBody "},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSkipInsideBody$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), envSkipInside+"=1", nstest.EnvRequire+"="+tc.require)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), tc.want) {
			if tc.require == "" && strings.Contains(string(out), "needs a private network namespace") {
				// No namespaces here: the parent skipped before the child ran.
				continue
			}
			t.Errorf("%s=%q: want %q in the output:\n%s", nstest.EnvRequire, tc.require, tc.want, out)
		}
		if tc.require != "" && !strings.Contains(string(out), "skipped in its namespace") {
			t.Errorf("%s=%q: the failure does not say the test skipped in its namespace:\n%s", nstest.EnvRequire, tc.require, out)
		}
	}
}
