package reuseport_test

import (
	"runtime"
	"testing"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
)

// TestMigratesRequests flips net.ipv4.tcp_migrate_req inside a private
// network namespace and checks Capabilities follows it at every call.
func TestMigratesRequests(t *testing.T) {
	if runtime.GOOS != "linux" {
		if reuseport.Capabilities().MigratesRequests {
			t.Errorf("Capabilities().MigratesRequests = true on %s, which has no tcp_migrate_req", runtime.GOOS)
		}
		t.Skip("tcp_migrate_req is a Linux sysctl")
	}
	if nstest.Isolate(t) {
		return
	}
	for _, v := range []string{"1", "0", "1"} {
		if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", v); err != nil {
			t.Fatalf("setting tcp_migrate_req=%s (Linux 5.14 or later needed): %v", v, err)
		}
		if got, want := reuseport.Capabilities().MigratesRequests, v == "1"; got != want {
			t.Errorf("with tcp_migrate_req=%s Capabilities().MigratesRequests = %v, want %v", v, got, want)
		}
	}
}
