package lameduck

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"testing"
	"time"
)

// TestStateHook: the hook reports the states its table has to the
// server, ignores others, and always calls the hook it wraps. A connection
// reported New holds the drain; reported Idle (through the table) it is
// closed after the grace, which ends the drain.
func TestStateHook(t *testing.T) {
	s := NewServer(Config{})
	var seen []int
	hook := StateHook(s, []State{7: Idle}, func(_ net.Conn, state int) { seen = append(seen, state) })
	client, sc := tcpPair(t, func(ln net.Listener) net.Listener { return s.Listen(ln) })
	hook(sc, -1) // not in the table: still New
	hook(sc, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Drain(ctx, time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with a New connection returned %v, want it to wait", err)
	}
	hook(sc, 7)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Drain(ctx, time.Millisecond); err != nil {
		t.Fatalf("Drain once the connection went Idle: %v", err)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := client.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("client read %d, %v; want the idle connection closed", n, err)
	}
	if want := []int{-1, 8, 7}; !slices.Equal(seen, want) {
		t.Errorf("the wrapped hook saw %v, want %v", seen, want)
	}
}

func TestNewServerRejectsBadSniff(t *testing.T) {
	for _, cfg := range []Config{{Sniff: -1}, {Sniff: MaxSniff + 1}, {QuietNew: true}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewServer(%+v) did not panic", cfg)
				}
			}()
			NewServer(cfg)
		}()
	}
}

// TestAcceptedNotYetReportedGetsItsGrace: a connection the listener has
// returned but the library has not reported yet (net/http calls its
// ConnState hook a moment after Accept returns) is quiet with QuietNew,
// and its grace counts from when it was accepted: a drain that begins in
// that moment must not close it before the client has had time to send
// its request.
func TestAcceptedNotYetReportedGetsItsGrace(t *testing.T) {
	s := NewServer(Config{Sniff: 1, QuietNew: true})
	client, sc := tcpPair(t, func(ln net.Listener) net.Listener { return s.Listen(ln) })
	const grace = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Drain(ctx, grace); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with a connection just accepted returned %v, want it to wait", err)
	}
	client.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := client.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("client read %d, %v; want the connection open for its grace of %v", n, err, grace)
	}
	// The library reports it now and it stays quiet: still within grace.
	s.SetState(sc, New)
	client.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := client.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after New was reported, client read %d, %v; want the connection open", n, err)
	}
}
