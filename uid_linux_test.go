package reuseport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/testenv"
	"golang.org/x/sys/unix"
)

const (
	envBindNetwork = "REUSEPORT_TEST_BIND_NETWORK"
	envBindAddr    = "REUSEPORT_TEST_BIND_ADDR"
	envBindHow     = "REUSEPORT_TEST_BIND_HOW"
)

// nobody is the uid and gid the other user's process runs as.
const nobody = 65534

// How a socket is made ready to share a port: by this package, or by hand
// with both SO_REUSEADDR and SO_REUSEPORT, as a hostile program would.
const (
	withPackage = "reuseport"
	byHand      = "SO_REUSEADDR+SO_REUSEPORT by hand"
)

func init() { helpers["bind"] = bindHelper }

// bindHelper tries once to bind the address it is given, and prints its
// uid and the outcome: "ok", "EADDRINUSE", or the error.
func bindHelper() int {
	network, addr, how := os.Getenv(envBindNetwork), os.Getenv(envBindAddr), os.Getenv(envBindHow)
	s, err := bind(network, addr, how)
	result := "ok"
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		result = "EADDRINUSE"
	case err != nil:
		result = "error: " + err.Error()
	default:
		s.Close()
	}
	fmt.Printf("uid=%d %s\n", os.Getuid(), result)
	return 0
}

func bind(network, address, how string) (io.Closer, error) {
	ctx := context.Background()
	switch how {
	case withPackage:
		var lc reuseport.ListenConfig
		if strings.HasPrefix(network, "udp") {
			return lc.ListenPacket(ctx, network, address)
		}
		return lc.Listen(ctx, network, address)
	case byHand:
		lc := net.ListenConfig{Control: reuseBoth}
		if strings.HasPrefix(network, "udp") {
			return lc.ListenPacket(ctx, network, address)
		}
		return lc.Listen(ctx, network, address)
	}
	return nil, fmt.Errorf("unknown way to bind: %q", how)
}

func reuseBoth(_, _ string, c syscall.RawConn) error {
	var err error
	cerr := c.Control(func(fd uintptr) {
		if err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return
		}
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// TestOtherUserCannotJoin checks that a process of another user cannot
// bind a port this package's sockets hold, even when it sets every option
// itself, while a process of the same user can.
//
// The by-hand UDP case shows why the package leaves SO_REUSEADDR off UDP
// sockets: when both sockets set it, Linux lets any user bind the port
// (the owner's socket there is made by hand too, as a control).
func TestOtherUserCannotJoin(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, testenv.RequireNetns, "needs root to run a process as uid %d (running as uid %d)", nobody, os.Geteuid())
	}
	binary := testenv.ShareTestBinary(t)
	for _, tc := range []struct {
		name       string
		network    string
		owner      string // how the owner binds
		joiner     string // how the other process binds
		uid        int
		wantResult string
	}{
		{"tcp/other user", "tcp4", withPackage, withPackage, nobody, "EADDRINUSE"},
		{"tcp/other user by hand", "tcp4", withPackage, byHand, nobody, "EADDRINUSE"},
		{"tcp/same user", "tcp4", withPackage, withPackage, 0, "ok"},
		{"udp/other user", "udp4", withPackage, withPackage, nobody, "EADDRINUSE"},
		{"udp/other user by hand", "udp4", withPackage, byHand, nobody, "EADDRINUSE"},
		{"udp/same user", "udp4", withPackage, withPackage, 0, "ok"},
		{"udp/other user by hand, owner by hand", "udp4", byHand, byHand, nobody, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			owner, err := bind(tc.network, "127.0.0.1:0", tc.owner)
			if err != nil {
				t.Fatal(err)
			}
			defer owner.Close()
			var addr string
			switch s := owner.(type) {
			case net.Listener:
				addr = s.Addr().String()
			case net.PacketConn:
				addr = s.LocalAddr().String()
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := helperCommand(ctx, t, binary, "bind", envBindNetwork+"="+tc.network, envBindAddr+"="+addr, envBindHow+"="+tc.joiner)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(tc.uid), Gid: uint32(tc.uid)}}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helper as uid %d: %v; stderr:\n%s", tc.uid, err, stderrOf(err))
			}
			want := fmt.Sprintf("uid=%d %s", tc.uid, tc.wantResult)
			if got := strings.TrimSpace(string(out)); got != want {
				t.Errorf("binding %s as %s: got %q, want %q", addr, tc.joiner, got, want)
			}
		})
	}
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
