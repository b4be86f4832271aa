package netns_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/b93f8b21/reuseport/internal/test/netns"
)

// TestSetSysctlRefusesOnHost checks the one guard that keeps a benchmark
// from changing the host's sysctls: called in the namespace it names as
// the host's, or with no host named, SetSysctl must refuse, not write.
func TestSetSysctlRefusesOnHost(t *testing.T) {
	here, err := netns.ID()
	if runtime.GOOS != "linux" {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("ID on %s: %v, want ErrUnsupported", runtime.GOOS, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	// A value the kernel would reject: were the guard missing, the write
	// fails anyway and the host stays as it was, but the test still fails.
	for _, host := range []string{here, ""} {
		if err := netns.SetSysctl(host, "net/ipv4/tcp_migrate_req", "not a number"); err == nil {
			t.Errorf("SetSysctl(%q) in namespace %s: no error", host, here)
		} else if !strings.Contains(err.Error(), "refusing") {
			t.Errorf("SetSysctl(%q) in namespace %s failed, but not by refusing: %v", host, here, err)
		}
	}
}
