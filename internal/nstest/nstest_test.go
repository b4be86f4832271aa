package nstest_test

import (
	"net"
	"os"
	"testing"

	"github.com/b93f8b21/reuseport/internal/nstest"
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
