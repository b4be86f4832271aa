// Package loadgen drives an HTTP server the way the restart tests and the
// benchmarks need: many clients, each request on a new connection (HTTP/1.0)
// or each client on one keep-alive connection (HTTP/1.1), no retries, every
// failure classified, and every request's start and latency kept, so that a
// run can be summed up whole or cut into intervals around events such as
// restarts. It talks raw HTTP so that nothing between the client and the
// socket (a transport's retry, a pooled connection) can hide a failure.
package loadgen

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config describes a load run. Addr (or NewClient) and one of Duration or
// Requests are required.
type Config struct {
	Addr     string        // host:port on loopback or in a test namespace
	Clients  int           // concurrent clients; 0 means 64
	Duration time.Duration // stop issuing requests after this long
	Requests int           // stop after this many requests in all (0: no limit)
	Timeout  time.Duration // per request, dial to last byte; 0 means 5s
	Path     string        // request path; "" means "/"
	// KeepAlive sends each client's requests over one HTTP/1.1 connection,
	// opening a new one only after a failure. Otherwise every request
	// opens a connection of its own, and the server closes it after
	// answering.
	KeepAlive bool
	// Method is the request method; "" means GET. Body, if not empty, is
	// sent with every request, with its Content-Length.
	Method string
	Body   string

	// NewClient, if set, makes each of the Clients in place of the raw
	// HTTP client: a gRPC client, an HTTP library's, one that goes
	// through a proxy. Addr, KeepAlive, Path, Method and Body are then
	// the client's business. Run closes every client it made.
	NewClient func() (Client, error)
}

// Client is one of a run's clients, sending one request at a time.
type Client interface {
	// Do sends one request and waits for its answer, giving up at
	// deadline. pid is the serving process's, if the answer names it,
	// else 0. Wrap an error with Stage to say which step failed.
	Do(deadline time.Time) (pid int, err error)
	Close() error
}

// Stage wraps err with the step of a request that it broke ("dial",
// "read", "rpc"), which Classify puts first in the failure's kind.
func Stage(name string, err error) error { return &stage{name, err} }

// ParsePID finds "pid=N" in a response body, as the example servers write
// it, and returns N, or 0 if there is none.
func ParsePID(b []byte) int { return parsePID(b) }

// Sample is one request's outcome, kept for timelines and percentiles.
type Sample struct {
	Start   time.Duration // since the run began
	Latency time.Duration // from the start (the dial, if it needed one) to the end of the response
	Failure string        // "" for success, else the kind (see Result.Failures)
	PID     int           // the pid=N the response body named, 0 if none
	err     error
}

// Result is what a run saw.
type Result struct {
	Began    time.Time         // when the first request could start; Sample.Start counts from here
	Elapsed  time.Duration     // from Began until the last request ended
	Samples  []Sample          // in the order they started
	Failures map[string]int    // kind -> count
	Examples map[string]string // kind -> the first error of that kind, for diagnosis
}

// Requests is the number of requests sent.
func (r *Result) Requests() int { return len(r.Samples) }

// Failed is the number of requests that did not get a 200 response.
func (r *Result) Failed() int {
	n := 0
	for _, c := range r.Failures {
		n += c
	}
	return n
}

// OK is the number of requests answered with 200.
func (r *Result) OK() int { return r.Requests() - r.Failed() }

// PIDs counts the successful responses per serving process.
func (r *Result) PIDs() map[int]int {
	m := make(map[int]int)
	for _, s := range r.Samples {
		if s.Failure == "" {
			m[s.PID]++
		}
	}
	return m
}

// Percentile returns the latency below which p (0..1) of all requests,
// failed ones included, completed.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Samples) == 0 {
		return 0
	}
	l := make([]time.Duration, len(r.Samples))
	for i, s := range r.Samples {
		l[i] = s.Latency
	}
	slices.Sort(l)
	return rank(l, p)
}

// Max is the longest latency seen.
func (r *Result) Max() time.Duration { return r.Percentile(1) }

// String is a one-paragraph summary for logs and benchmark output.
func (r *Result) String() string {
	var b strings.Builder
	rate := float64(r.Requests()) / r.Elapsed.Seconds()
	fmt.Fprintf(&b, "requests=%d failed=%d (%.1f req/s over %v) latency p50=%v p99=%v p99.9=%v max=%v",
		r.Requests(), r.Failed(), rate, r.Elapsed.Round(time.Millisecond),
		r.Percentile(0.5).Round(time.Microsecond), r.Percentile(0.99).Round(time.Microsecond),
		r.Percentile(0.999).Round(time.Microsecond), r.Max().Round(time.Microsecond))
	kinds := make([]string, 0, len(r.Failures))
	for k := range r.Failures {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "\n  %-28s %d (first: %s)", k, r.Failures[k], r.Examples[k])
	}
	return b.String()
}

// Run sends load until the duration or request budget is spent, or ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Addr == "" && cfg.NewClient == nil {
		return nil, errors.New("loadgen: Config.Addr or Config.NewClient is required")
	}
	if cfg.Duration <= 0 && cfg.Requests <= 0 {
		return nil, errors.New("loadgen: set Config.Duration or Config.Requests, or the run never ends")
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	proto := "HTTP/1.0"
	if cfg.KeepAlive {
		proto = "HTTP/1.1"
	}
	if cfg.Method == "" {
		cfg.Method = http.MethodGet
	}
	head := cfg.Method + " " + cfg.Path + " " + proto + "\r\nHost: " + cfg.Addr + "\r\n"
	if cfg.Body != "" {
		head += "Content-Type: application/octet-stream\r\nContent-Length: " + strconv.Itoa(len(cfg.Body)) + "\r\n"
	}
	request := []byte(head + "\r\n" + cfg.Body)
	newClient := cfg.NewClient
	if newClient == nil {
		newClient = func() (Client, error) {
			return &client{addr: cfg.Addr, request: request, keepAlive: cfg.KeepAlive}, nil
		}
	}

	var (
		mu      sync.Mutex
		samples []Sample
		budget  = cfg.Requests
		wg      sync.WaitGroup
	)
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if cfg.Requests <= 0 {
			return true
		}
		if budget == 0 {
			return false
		}
		budget--
		return true
	}
	begin := time.Now()
	for range cfg.Clients {
		wg.Go(func() {
			c, err := newClient()
			if err != nil {
				mu.Lock()
				samples = append(samples, Sample{Failure: Classify(Stage("client", err)), err: err})
				mu.Unlock()
				return
			}
			defer c.Close()
			var local []Sample
			for {
				// The clock, not a context's timer, ends the run, and the
				// instant a request is stamped with is the one checked: no
				// request starts after Duration, however late a timer
				// fires or a goroutine runs.
				start := time.Now()
				if ctx.Err() != nil || (cfg.Duration > 0 && start.Sub(begin) >= cfg.Duration) || !take() {
					break
				}
				pid, err := c.Do(start.Add(cfg.Timeout))
				s := Sample{Start: start.Sub(begin), Latency: time.Since(start), PID: pid}
				if err != nil {
					s.Failure, s.err = Classify(err), err
				}
				local = append(local, s)
			}
			mu.Lock()
			samples = append(samples, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(samples, func(a, b Sample) int { return cmp.Compare(a.Start, b.Start) })
	r := &Result{Began: begin, Elapsed: time.Since(begin), Samples: samples, Failures: make(map[string]int), Examples: make(map[string]string)}
	for _, s := range samples {
		if s.Failure != "" {
			r.Failures[s.Failure]++
			if _, ok := r.Examples[s.Failure]; !ok {
				r.Examples[s.Failure] = s.err.Error()
			}
		}
	}
	return r, nil
}

// stage wraps an error with the step of the request it broke.
type stage struct {
	name string
	err  error
}

func (s *stage) Error() string { return s.name + ": " + s.err.Error() }
func (s *stage) Unwrap() error { return s.err }

// errStatus is a response that was not 200.
type errStatus struct{ line string }

func (e *errStatus) Error() string { return "status " + e.line }

// client is one of a run's clients, with its connection if it keeps one.
type client struct {
	addr      string
	request   []byte
	keepAlive bool
	conn      net.Conn
	br        *bufio.Reader
}

// Do sends one request, on a new connection unless a kept one is open, and
// reads the whole response. A connection that failed is not used again.
func (c *client) Do(deadline time.Time) (pid int, err error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, time.Until(deadline))
		if err != nil {
			return 0, &stage{"dial", err}
		}
		c.conn = conn
		if c.br == nil {
			c.br = bufio.NewReader(conn)
		} else {
			c.br.Reset(conn)
		}
	}
	pid, reuse, err := c.exchange(deadline)
	if err != nil || !reuse {
		c.Close()
	}
	return pid, err
}

// exchange sends the request on c's connection and reads the response, and
// reports whether the connection may carry another request.
func (c *client) exchange(deadline time.Time) (pid int, reuse bool, err error) {
	c.conn.SetDeadline(deadline)
	if _, err := c.conn.Write(c.request); err != nil {
		return 0, false, &stage{"write", err}
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, false, &stage{"read", err}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, false, &stage{"read", err}
	}
	if resp.StatusCode != http.StatusOK {
		return 0, false, &stage{"response", &errStatus{resp.Proto + " " + resp.Status}}
	}
	// A server may close a kept connection after any response, and says
	// so (Connection: close, which net/http sends once it shuts down):
	// that is not a failure, but the next request needs a new connection.
	reuse = c.keepAlive && !resp.Close
	if !reuse {
		// Wait for the server to close, so that it holds the TIME_WAIT
		// and a long run cannot use up the client's ports; a reset here
		// still fails the request, as a client reading to the end would
		// see it.
		if _, err := io.Copy(io.Discard, c.br); err != nil {
			return 0, false, &stage{"read", err}
		}
	}
	return parsePID(body), reuse, nil
}

func (c *client) Close() error {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	return nil
}

// parsePID finds "pid=N" in a response, as the example server writes it.
func parsePID(b []byte) int {
	_, after, ok := bytes.Cut(b, []byte("pid="))
	if !ok {
		return 0
	}
	end := 0
	for end < len(after) && after[end] >= '0' && after[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(string(after[:end]))
	return n
}

// Classify names a failure by the request step and the cause, e.g.
// "dial: refused", "read: reset", "read: eof before response".
func Classify(err error) string {
	name := "request"
	var s *stage
	if errors.As(err, &s) {
		name = s.name
	}
	var st *errStatus
	switch {
	case errors.As(err, &st):
		return name + ": " + st.Error()
	case errors.Is(err, errRefused):
		return name + ": refused"
	case errors.Is(err, errReset):
		return name + ": reset"
	case errors.Is(err, errBrokenPipe):
		return name + ": broken pipe"
	case errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return name + ": timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return name + ": eof before response"
	case errors.Is(err, errAddrNotAvail):
		return name + ": no local port"
	}
	return name + ": other"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
