package reuseport_test

import (
	"runtime"
	"testing"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/nstest"
)

// TestMigratesRequests flips net.ipv4.tcp_migrate_req inside a private
// network namespace and checks MigratesRequests follows it.
func TestMigratesRequests(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("tcp_migrate_req is a Linux sysctl")
	}
	if nstest.Isolate(t) {
		return
	}
	for _, v := range []string{"1", "0"} {
		if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", v); err != nil {
			t.Fatalf("setting tcp_migrate_req=%s (Linux 5.14 or later needed): %v", v, err)
		}
		got, err := reuseport.MigratesRequests()
		if err != nil {
			t.Fatal(err)
		}
		if want := v == "1"; got != want {
			t.Errorf("with tcp_migrate_req=%s MigratesRequests() = %v, want %v", v, got, want)
		}
	}
}
