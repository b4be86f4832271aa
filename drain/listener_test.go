package drain_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/drain"
)

func TestListenerCloseUnblocksAccept(t *testing.T) {
	checkLeaks(t)
	l := drain.NewListener(listen(t))
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	pending(t, "Accept", errc)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := recv(t, "Accept", errc); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close returned %v, want an error wrapping %v", err, net.ErrClosed)
	}
	var opErr *net.OpError
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) || !errors.As(err, &opErr) || opErr.Op != "accept" {
		t.Fatalf("second Accept after Close returned %v, want an accept *net.OpError wrapping %v", err, net.ErrClosed)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// dup returns a second listener on the socket of ln, as a successor that
// received it over a unix socket would hold.
func dup(t *testing.T, ln net.Listener) net.Listener {
	t.Helper()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return other
}

// TestListenerCloseLeavesSharedSocket: Close releases only its own
// descriptor. Connections queued on the socket before and after Close go to
// the other holder of that socket and work; none is reset.
func TestListenerCloseLeavesSharedSocket(t *testing.T) {
	checkLeaks(t)
	ln := listen(t)
	other := dup(t, ln)
	l := drain.NewListener(ln)
	var clients []net.Conn
	for range 3 {
		clients = append(clients, dial(t, ln.Addr())) // queued: nobody accepts yet
	}
	l.Close()
	for range 3 {
		clients = append(clients, dial(t, ln.Addr()))
	}
	for i, c := range clients {
		sc, err := other.Accept()
		if err != nil {
			t.Fatalf("the other holder's Accept %d: %v", i, err)
		}
		echo(t, c, sc)
		sc.Close()
	}
}

// echo checks that c and its server side sc carry data both ways.
func echo(t *testing.T, c, sc net.Conn) {
	t.Helper()
	sc.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatalf("client write: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("server read %q, %v", buf, err)
	}
	if _, err := io.WriteString(sc, "pong"); err != nil {
		t.Fatalf("server write: %v", err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("client read %q, %v", buf, err)
	}
}

// TestListenerWait: Wait returns once the listener is stopped and every
// connection it accepted is closed, and no sooner.
func TestListenerWait(t *testing.T) {
	checkLeaks(t)
	ln := listen(t)
	l := drain.NewListener(ln)
	var conns []net.Conn
	for range 2 {
		c := dial(t, ln.Addr())
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		echo(t, c, sc)
		conns = append(conns, sc)
	}
	waited := make(chan error, 1)
	go func() { waited <- l.Wait(context.Background()) }()
	pending(t, "Wait before Close", waited)
	l.Close()
	pending(t, "Wait with two connections open", waited)
	conns[0].Close()
	conns[0].Close() // a second Close must not count twice
	pending(t, "Wait with one connection open", waited)
	conns[1].Close()
	if err := recv(t, "Wait", waited); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if err := l.Wait(context.Background()); err != nil {
		t.Fatalf("Wait once drained: %v", err)
	}
}

func TestListenerWaitContext(t *testing.T) {
	checkLeaks(t)
	ln := listen(t)
	l := drain.NewListener(ln)
	dial(t, ln.Addr())
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a connection open returned %v, want %v", err, context.DeadlineExceeded)
	}
	// Wait leaves the connection alone.
	if _, err := sc.Write([]byte("x")); err != nil {
		t.Fatalf("connection after Wait timed out: %v", err)
	}
	sc.Close()
	if err := l.Wait(context.Background()); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

// TestListenerConn: accepted connections unwrap to the inner connection and
// keep its half-close.
func TestListenerConn(t *testing.T) {
	checkLeaks(t)
	ln := listen(t)
	l := drain.NewListener(ln)
	defer l.Close()
	c := dial(t, ln.Addr())
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	inner, ok := sc.(interface{ NetConn() net.Conn })
	if !ok {
		t.Fatalf("%T has no NetConn method", sc)
	}
	if _, ok := inner.NetConn().(*net.TCPConn); !ok {
		t.Fatalf("NetConn returned %T, want *net.TCPConn", inner.NetConn())
	}
	if sc.LocalAddr().String() != ln.Addr().String() || sc.RemoteAddr().String() != c.LocalAddr().String() {
		t.Fatalf("addresses %v→%v, want %v→%v", sc.RemoteAddr(), sc.LocalAddr(), c.LocalAddr(), ln.Addr())
	}
	// sendfile goes through ReadFrom.
	want, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := io.Copy(sc, f); err != nil || n != int64(len(want)) {
		t.Fatalf("io.Copy from a file: %d bytes, %v; want %d", n, err, len(want))
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(want) {
		t.Fatalf("client read %d bytes, %v; want the file", len(got), err)
	}
	cw, ok := sc.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T has no CloseWrite method", sc)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("client read %d, %v after CloseWrite; want EOF", n, err)
	}
}

// TestListenerWaitCoversAcceptInFlight races Close and Wait against an
// Accept that is returning a connection: Wait must not report the listener
// drained while a connection it is about to return, or has returned, is open.
func TestListenerWaitCoversAcceptInFlight(t *testing.T) {
	checkLeaks(t)
	for i := range 200 {
		ln := listen(t)
		l := drain.NewListener(ln)
		var returned, closed atomic.Int64
		loop := make(chan struct{})
		go func() {
			defer close(loop)
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				returned.Add(1)
				go func() {
					closed.Add(1)
					c.Close()
				}()
			}
		}()
		clients := make(chan net.Conn, 4)
		for range cap(clients) {
			go func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					c = nil
				}
				clients <- c
			}()
		}
		time.Sleep(time.Duration(i%10) * 50 * time.Microsecond)
		l.Close()
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		atWait := returned.Load()
		if closed.Load() < atWait {
			t.Fatalf("round %d: Wait returned with %d of %d accepted connections open", i, atWait-closed.Load(), atWait)
		}
		<-loop
		if n := returned.Load(); n != atWait {
			t.Fatalf("round %d: Accept returned %d connections after Wait reported the listener drained", i, n-atWait)
		}
		for range cap(clients) {
			if c := <-clients; c != nil {
				c.Close()
			}
		}
	}
}

// TestListenerWaitClaimed: WaitClaimed returns once the listener is stopped
// and the server has used or closed every connection it accepted, whether
// or not those are still open; asking for an address is not using it.
func TestListenerWaitClaimed(t *testing.T) {
	checkLeaks(t)
	ln := listen(t)
	l := drain.NewListener(ln)
	var clients, conns []net.Conn
	for range 4 {
		clients = append(clients, dial(t, ln.Addr()))
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, sc)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	claimed := make(chan error, 1)
	go func() { claimed <- l.WaitClaimed(context.Background()) }()
	pending(t, "WaitClaimed before Close", claimed)
	l.Close()
	pending(t, "WaitClaimed with four connections untouched", claimed)

	conns[0].SetDeadline(time.Now().Add(timeout))
	_ = conns[1].RemoteAddr()
	_ = conns[1].LocalAddr()
	pending(t, "WaitClaimed with three connections untouched", claimed)
	clients[1].Write([]byte("x"))
	if _, err := conns[1].Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := conns[2].Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	pending(t, "WaitClaimed with one connection untouched", claimed)
	conns[3].Close()
	if err := recv(t, "WaitClaimed", claimed); err != nil {
		t.Fatalf("WaitClaimed: %v", err)
	}
	// Three connections are still open: Wait is not done.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with three connections open returned %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	l2 := drain.NewListener(listen(t))
	defer l2.Close()
	if err := l2.WaitClaimed(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitClaimed on a listener never stopped returned %v", err)
	}
}
