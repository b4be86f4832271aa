// Package spread measures how a port's new connections are shared among the
// sockets or accept loops serving it. Each server answers a connection with
// one byte naming itself, so the client's tally is the ground truth: a
// connection counts only once it has been accepted and answered.
package spread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Serve accepts on ln until ln is closed, answers every connection with the
// byte id and closes it. It returns how many connections it answered.
func Serve(ln net.Listener, id byte) (int, error) {
	answer := []byte{id}
	for n := 0; ; n++ {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		// One byte into a fresh socket buffer cannot block.
		_, werr := c.Write(answer)
		c.Close()
		if werr != nil {
			return n, werr
		}
	}
}

// Dial opens total connections to addr, at most workers at a time, and
// returns how many were answered with each id in [0, n). It stops at the
// first failure: on loopback every connection must be answered.
func Dial(ctx context.Context, addr string, total, workers, n int) ([]int, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	counts := make([]atomic.Int64, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, total) {
		wg.Go(func() {
			var buf [1]byte
			for next.Add(1) <= int64(total) && ctx.Err() == nil {
				id, err := dialOnce(ctx, addr, buf[:])
				if err == nil && int(id) >= n {
					err = fmt.Errorf("answered by server %d of %d", id, n)
				}
				if err != nil {
					cancel(err)
					return
				}
				counts[id].Add(1)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	out := make([]int, n)
	for i := range counts {
		out[i] = int(counts[i].Load())
	}
	return out, nil
}

// ioTimeout bounds each connection; loopback answers in microseconds.
const ioTimeout = 5 * time.Second

func dialOnce(ctx context.Context, addr string, buf []byte) (byte, error) {
	d := net.Dialer{Timeout: ioTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.ReadFull(c, buf); err != nil {
		return 0, fmt.Errorf("reading the server's id: %w", err)
	}
	// A reset rather than a FIN leaves no TIME_WAIT behind, so tens of
	// thousands of connections do not exhaust the ephemeral ports.
	c.(*net.TCPConn).SetLinger(0)
	return buf[0], nil
}

// Result is the tally of one setup.
type Result struct {
	Setup  string // what served the port, e.g. "reuseport, 4 processes"
	Counts []int  // connections answered by each server
}

// Total is the number of connections answered.
func (r Result) Total() int {
	t := 0
	for _, c := range r.Counts {
		t += c
	}
	return t
}

// MaxMin is the largest count over the smallest: 1 is a perfect spread,
// +Inf means some server got nothing.
func (r Result) MaxMin() float64 {
	lo, hi := slices.Min(r.Counts), slices.Max(r.Counts)
	if lo == 0 {
		return math.Inf(1)
	}
	return float64(hi) / float64(lo)
}

// Shares are the fractions of connections each server answered.
func (r Result) Shares() []float64 {
	s := make([]float64, len(r.Counts))
	t := float64(r.Total())
	for i, c := range r.Counts {
		if t > 0 {
			s[i] = float64(c) / t
		}
	}
	return s
}
