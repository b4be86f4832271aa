//go:build unix

package reuseport_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/b93f8b21/reuseport"
)

// TestControlOnUnixNetworks checks that Control, in a net.Dialer or a
// net.ListenConfig, refuses the unix networks with the error Listen gives,
// before it touches the socket: Linux 6.12.9 and later refuse SO_REUSEPORT
// on a unix socket with a bare EOPNOTSUPP, where older kernels accept it.
func TestControlOnUnixNetworks(t *testing.T) {
	dir := t.TempDir()
	_, err := reuseport.Listen("unix", filepath.Join(dir, "listen.sock"))
	var want *net.OpError
	if !errors.As(err, &want) {
		t.Fatalf("Listen on unix: got %v (%T), want a *net.OpError", err, err)
	}

	// Servers to dial, made without Control.
	stream := filepath.Join(dir, "stream.sock")
	ln, err := net.Listen("unix", stream)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gram := filepath.Join(dir, "gram.sock")
	pc, err := net.ListenPacket("unixgram", gram)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	ctx := context.Background()
	d := net.Dialer{Control: reuseport.Control}
	lc := net.ListenConfig{Control: reuseport.Control}
	fresh := filepath.Join(dir, "fresh.sock") // must not come to exist
	for _, tc := range []struct {
		name, op, network string
		call              func() (io.Closer, error)
	}{
		{"Dialer unix", "dial", "unix", func() (io.Closer, error) { return d.Dial("unix", stream) }},
		{"Dialer unixgram", "dial", "unixgram", func() (io.Closer, error) { return d.Dial("unixgram", gram) }},
		{"ListenConfig.Listen unix", "listen", "unix", func() (io.Closer, error) { return lc.Listen(ctx, "unix", fresh) }},
		{"ListenConfig.ListenPacket unixgram", "listen", "unixgram", func() (io.Closer, error) { return lc.ListenPacket(ctx, "unixgram", fresh) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noNewFDsAtEnd(t, "the refused call")
			c, err := tc.call()
			if c != nil {
				c.Close()
				t.Errorf("returned a socket along with error %v", err)
			}
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != tc.op || op.Net != tc.network {
				t.Fatalf("got %v (%T), want a *net.OpError for %s %s", err, err, tc.op, tc.network)
			}
			if !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("error %v does not wrap errors.ErrUnsupported", err)
			}
			if op.Err.Error() != want.Err.Error() {
				t.Errorf("error %q, want the one Listen gives: %q", op.Err, want.Err)
			}
			if _, err := os.Lstat(fresh); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a socket file was made at %s: %v", fresh, err)
			}
		})
	}
}
