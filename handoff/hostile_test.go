//go:build darwin || freebsd || linux

package handoff_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
	"golang.org/x/sys/unix"
)

// TestHostilePeers throws broken and malicious peers at a serving
// predecessor. After each one, the predecessor must still accept on its
// listener, hold exactly the descriptors it held before, and still hand
// its sockets to a real successor at the end.
func TestHostilePeers(t *testing.T) {
	const timeout = 300 * time.Millisecond
	path := sockPath(t)
	p, err := handoff.Start(context.Background(), handoff.Config{Path: path, Timeout: timeout, Logger: newLog(t, "pred").logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ln := listen(t, p, "tcp", "127.0.0.1:0")
	ready(t, p)

	hello := handoff.HelloFrame(handoff.MinVersion, handoff.MaxVersion)
	var dialed time.Time // when the current peer began to connect
	for _, tc := range []struct {
		name string
		peer func(t *testing.T, c *net.UnixConn)
	}{
		{"garbage", func(t *testing.T, c *net.UnixConn) {
			c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			readToEOF(t, c)
		}},
		{"garbage with descriptors", func(t *testing.T, c *net.UnixConn) {
			sendWithFDs(t, c, []byte("\x00\x00\x00garbage"), 3)
			readToEOF(t, c)
		}},
		{"hello with descriptors", func(t *testing.T, c *net.UnixConn) {
			sendWithFDs(t, c, hello, 2)
			readToEOF(t, c)
		}},
		{"too many descriptors", func(t *testing.T, c *net.UnixConn) {
			skipIfEmulatorLeaksRights(t)
			sendWithFDs(t, c, hello, 200)
			readToEOF(t, c)
		}},
		{"huge length", func(t *testing.T, c *net.UnixConn) {
			c.Write([]byte{hello[0], 0xff, 0xff})
			readToEOF(t, c)
		}},
		{"truncated hello", func(t *testing.T, c *net.UnixConn) {
			c.Write(hello[:7])
		}},
		{"stall", func(t *testing.T, c *net.UnixConn) {
			readToEOF(t, c)
			if d := time.Since(dialed); d < timeout {
				t.Errorf("the predecessor dropped a silent peer after %v, before its Timeout of %v", d, timeout)
			}
		}},
		{"stall mid-hello", func(t *testing.T, c *net.UnixConn) {
			c.Write(hello[:len(hello)-1])
			readToEOF(t, c)
		}},
		{"hello then close", func(t *testing.T, c *net.UnixConn) {
			c.Write(hello)
		}},
		{"close mid-transfer", func(t *testing.T, c *net.UnixConn) {
			c.Write(hello)
			c.Read(make([]byte, 5))
		}},
		{"takes sockets, never ready", func(t *testing.T, c *net.UnixConn) {
			c.Write(hello)
			readSockets(t, c, 1)
		}},
		{"another message instead of ready", func(t *testing.T, c *net.UnixConn) {
			c.Write(hello)
			readSockets(t, c, 1)
			c.Write(hello)
			readToEOF(t, c)
		}},
		{"ready with payload", func(t *testing.T, c *net.UnixConn) {
			c.Write(hello)
			readSockets(t, c, 1)
			r := handoff.ReadyFrame()
			r = binary.BigEndian.AppendUint16(r[:1], 1)
			c.Write(append(r, 'x'))
			readToEOF(t, c)
		}},
		{"future version", func(t *testing.T, c *net.UnixConn) {
			c.Write(handoff.HelloFrame(7, 9))
			b, _ := io.ReadAll(c)
			if len(b) == 0 || b[0] != handoff.MsgRefuse {
				t.Errorf("answer %q, want a refusal", b)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fds := openFDs(t)
			dialed = time.Now()
			c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatalf("the predecessor no longer answers on Path: %v", err)
			}
			defer c.Close() // for a peer that skips; closing twice is harmless
			c.SetDeadline(time.Now().Add(peerWait))
			tc.peer(t, c)
			c.Close()
			stillServing(t, ln)
			settleFDs(t, fds)
			if isDone(p) {
				t.Fatal("Done closed")
			}
		})
	}

	s := start(t, path, newLog(t, "succ"))
	listen(t, s, "tcp", ln.Addr().String())
	wantOrigins(t, s, "inherited")
	ready(t, s)
	waitDone(t, p)
}

// stillServing checks ln still accepts connections.
func stillServing(t *testing.T, ln net.Listener) {
	t.Helper()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("the predecessor's listener refuses connections: %v", err)
	}
	defer c.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	a, err := ln.Accept()
	if err != nil {
		t.Fatalf("the predecessor's listener no longer accepts: %v", err)
	}
	a.Close()
}

// peerWait bounds every wait of a test peer for the predecessor: far longer
// than the predecessor's Timeout, so that only a predecessor that never
// answers or never lets go reaches it.
const peerWait = 10 * time.Second

// readToEOF reads, closing any descriptor received, until the predecessor
// closes the connection, and fails the test if it does not within peerWait.
func readToEOF(t *testing.T, c *net.UnixConn) {
	t.Helper()
	if _, err := readFDs(c, -1); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the predecessor still holds the connection after %v", peerWait)
	}
}

// readSockets reads the offer and its want sockets, closing the
// descriptors received, and fails the test if they do not all arrive
// within peerWait.
func readSockets(t *testing.T, c *net.UnixConn, want int) {
	t.Helper()
	if n, err := readFDs(c, want); n != want {
		t.Errorf("received %d descriptors, want %d: %v", n, want, err)
	}
}

// readFDs reads until want descriptors have arrived, or with want < 0
// until the end of the stream, closing each descriptor received. It returns
// their count and the error that ended the read early: io.EOF, a reset, or
// os.ErrDeadlineExceeded after peerWait.
func readFDs(c *net.UnixConn, want int) (int, error) {
	buf, oob := make([]byte, 4096), make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(peerWait))
	n := 0
	for want < 0 || n < want {
		m, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			n += countRights(oob[:oobn])
		}
		if err != nil {
			return n, err
		}
		if m == 0 && oobn == 0 {
			return n, io.EOF
		}
	}
	return n, nil
}

// sendWithFDs sends b with n descriptors (of a pipe) attached.
func sendWithFDs(t *testing.T, c *net.UnixConn, b []byte, n int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fds := make([]int, n)
	for i := range fds {
		fds[i] = int(r.Fd())
	}
	if _, _, err := c.WriteMsgUnix(b, unix.UnixRights(fds...), nil); err != nil && !errors.Is(err, unix.ETOOMANYREFS) {
		t.Fatalf("sending %d descriptors: %v", n, err)
	}
}
