// Package load is an HTTP/1.1 load client that keeps every request's time,
// latency and outcome, so that a run can be cut into intervals: requests,
// errors and latency percentiles per second, around events such as
// restarts. wrk reports only totals; this is for watching a run over time.
//
// It speaks just enough HTTP for a GET with a fixed response, over raw
// connections, so that every failure is seen as it happened: there are no
// retries and no connection pool to hide one.
package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config is one run.
type Config struct {
	Addr     string        // host:port of the server, on loopback
	Clients  int           // concurrent connections
	Duration time.Duration // how long to send requests
	// KeepAlive sends every request of a client over one connection (until
	// it fails); otherwise each request opens a connection of its own and
	// asks the server to close it.
	KeepAlive bool
	// Timeout bounds each request, connect included. Zero means 5s.
	Timeout time.Duration
	// MaxRequests bounds the run whatever its duration. Zero means 10M.
	MaxRequests int
}

// sample is one request: when it started and how long it took, relative to
// the start of the run, and how it failed if it did.
type sample struct {
	at, latency time.Duration
	fail        Failure
}

// Failure classifies a failed request.
type Failure uint8

// Kinds of failure, as a client sees them.
const (
	OK        Failure = iota
	Refused           // connect refused: nothing listening
	Reset             // connection reset by the server
	EOF               // closed before a complete response
	Timeout           // no response within the timeout
	BadStatus         // a response other than 200
	Other
)

var failureNames = [...]string{"ok", "refused", "reset", "eof", "timeout", "status", "other"}

func (f Failure) String() string {
	if int(f) < len(failureNames) {
		return failureNames[f]
	}
	return fmt.Sprintf("failure(%d)", uint8(f))
}

func classify(err error) Failure {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return Reset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return EOF
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return Timeout
	case errors.Is(err, errStatus):
		return BadStatus
	}
	return Other
}

var errStatus = errors.New("load: status other than 200")

// Result is a finished run.
type Result struct {
	Start   time.Time
	Elapsed time.Duration
	samples []sample
	// FirstErrors keeps one error message per kind, for diagnosis.
	FirstErrors map[Failure]string
}

// Run sends requests until the duration is over, ctx is done, or
// MaxRequests have been sent, and waits for those in flight.
func Run(ctx context.Context, c Config) (*Result, error) {
	if c.Clients < 1 || c.Duration <= 0 {
		return nil, fmt.Errorf("load: want at least one client and a positive duration, got %+v", c)
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.MaxRequests == 0 {
		c.MaxRequests = 10_000_000
	}
	req := "GET / HTTP/1.1\r\nHost: " + c.Addr + "\r\n"
	if !c.KeepAlive {
		req += "Connection: close\r\n"
	}
	req += "\r\n"

	var sent atomic.Int64

	res := &Result{Start: time.Now(), FirstErrors: map[Failure]string{}}
	// The clock, not a context deadline, ends the run: a dial that sees
	// the deadline pass before the context's timer fires would fail at
	// once, again and again, until it did. Requests in flight at the end
	// finish within their own timeout.
	end := res.Start.Add(c.Duration)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range c.Clients {
		wg.Go(func() {
			w := worker{cfg: c, req: []byte(req), start: res.Start}
			defer w.close()
			for ctx.Err() == nil && time.Now().Before(end) && sent.Add(1) <= int64(c.MaxRequests) {
				w.one(ctx)
			}
			mu.Lock()
			defer mu.Unlock()
			res.samples = append(res.samples, w.samples...)
			for f, msg := range w.firstErrors {
				if _, ok := res.FirstErrors[f]; !ok {
					res.FirstErrors[f] = msg
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(res.Start)
	slices.SortFunc(res.samples, func(a, b sample) int { return int(a.at - b.at) })
	return res, nil
}

type worker struct {
	cfg         Config
	req         []byte
	start       time.Time
	conn        net.Conn
	br          *bufio.Reader
	samples     []sample
	firstErrors map[Failure]string
}

func (w *worker) one(ctx context.Context) {
	t0 := time.Now()
	err := w.roundTrip(ctx, t0.Add(w.cfg.Timeout))
	lat := time.Since(t0)
	if err != nil && ctx.Err() != nil {
		// Cancelled by the caller, not failed.
		return
	}
	f := classify(err)
	w.samples = append(w.samples, sample{at: t0.Sub(w.start), latency: lat, fail: f})
	if err != nil {
		if w.firstErrors == nil {
			w.firstErrors = map[Failure]string{}
		}
		if _, ok := w.firstErrors[f]; !ok {
			w.firstErrors[f] = err.Error()
		}
	}
}

func (w *worker) roundTrip(ctx context.Context, deadline time.Time) error {
	if w.conn == nil {
		d := net.Dialer{Deadline: deadline}
		c, err := d.DialContext(ctx, "tcp", w.cfg.Addr)
		if err != nil {
			return err
		}
		w.conn = c
		if w.br == nil {
			w.br = bufio.NewReaderSize(c, 4096)
		} else {
			w.br.Reset(c)
		}
	}
	w.conn.SetDeadline(deadline)
	err := w.exchange()
	if err != nil || !w.cfg.KeepAlive {
		if err == nil {
			// Wait for the server's FIN so that it, not this client, holds
			// the TIME_WAIT; otherwise a long run could run out of ports.
			io.Copy(io.Discard, w.br)
		}
		w.close()
	}
	return err
}

func (w *worker) exchange() error {
	if _, err := w.conn.Write(w.req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(w.br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s", errStatus, resp.Status)
	}
	return nil
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}
