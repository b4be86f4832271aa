package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/httpserver"
	"github.com/b93f8b21/reuseport/internal/test/nginx"
	"github.com/b93f8b21/reuseport/internal/test/wrk"
)

// httpServer is one contender of the throughput runs.
type httpServer struct {
	name  string
	start func(ctx context.Context, r *runner) (*httpTarget, error)
}

// httpTarget is a running contender.
type httpTarget struct {
	addr string
	// stop shuts it down and says what it saw.
	stop func() (httpCounts, error)
	// conf is nginx's generated configuration, for the record.
	conf string
}

// httpCounts are a server's own counters over its whole life.
type httpCounts struct {
	conns, requests int64
	// perProcess are the requests each process served, for Go servers.
	perProcess []int64
}

func httpServers(n int) []httpServer {
	return []httpServer{
		{"Go, `net.Listen`, 1 process", func(_ context.Context, r *runner) (*httpTarget, error) {
			return r.startGoTarget(httpserver.ListenNet, 1, 1)
		}},
		{fmt.Sprintf("Go, `reuseport.Listen`, %d processes", n), func(_ context.Context, r *runner) (*httpTarget, error) {
			return r.startGoTarget(httpserver.ListenReuseport, r.n, 1)
		}},
		{fmt.Sprintf("Go, `reuseport.ListenGroup`, %d sockets in 1 process", n), func(_ context.Context, r *runner) (*httpTarget, error) {
			return r.startGoTarget(httpserver.ListenGroup, 1, r.n)
		}},
		{fmt.Sprintf("nginx, %d workers, `listen … reuseport`", n), startNginxTarget},
	}
}

// The baseline and the reference, by position in httpServers.
const (
	httpNetListen = 0
	httpNginx     = 3
)

type httpMode struct {
	name  string
	close bool
}

var httpModes = []httpMode{
	{"one request per connection", true},
	{"keep-alive", false},
}

const (
	wrkConns      = 64
	httpRounds    = 3
	httpDuration  = 8 * time.Second
	httpWarmup    = time.Second
	maxErrorShare = 0.01 // more than this, and something is broken
)

func (r *runner) startGoTarget(mode string, procs, sockets int) (*httpTarget, error) {
	g, err := r.startGoServers(mode, procs, sockets)
	if err != nil {
		return nil, err
	}
	return &httpTarget{addr: g.addr, stop: func() (httpCounts, error) {
		done, err := g.stop()
		var c httpCounts
		for _, d := range done {
			c.conns += d.Conns
			c.requests += d.Requests
			c.perProcess = append(c.perProcess, d.Requests)
		}
		return c, err
	}}, nil
}

func startNginxTarget(ctx context.Context, r *runner) (*httpTarget, error) {
	s, err := nginx.Start(ctx, nginx.Config{Workers: r.n})
	if err != nil {
		return nil, err
	}
	if pids, err := s.Workers(); err == nil && len(pids) != r.n {
		s.Stop()
		return nil, fmt.Errorf("nginx runs %d workers, want %d", len(pids), r.n)
	}
	// Its counters include the requests that checked it was up.
	before, err := s.Status()
	if err != nil {
		s.Stop()
		return nil, err
	}
	return &httpTarget{addr: s.Addr, conf: s.Conf, stop: func() (httpCounts, error) {
		after, statusErr := s.Status()
		stopErr := s.Stop()
		// The status request itself is one connection and one request.
		c := httpCounts{conns: after.Accepts - before.Accepts - 1, requests: after.Requests - before.Requests - 1}
		return c, errors.Join(statusErr, stopErr)
	}}, nil
}

// httpRun is one measured wrk run.
type httpRun struct {
	server, mode int
	wrk          wrk.Result
	counts       httpCounts
}

func (r *runner) httpSection(ctx context.Context) (string, error) {
	rounds, duration, warmup := httpRounds, httpDuration, httpWarmup
	if r.short {
		rounds, duration, warmup = 1, time.Second, 0
	}
	servers := httpServers(r.n)
	var runs []httpRun
	var log strings.Builder // wrk's own reports, for the record
	var nginxConf string
	var failures []error
	for round := range rounds {
		for si, srv := range servers {
			for mi, mode := range httpModes {
				run, conf, err := r.httpOne(ctx, srv, mode, duration, warmup)
				if err != nil {
					return "", fmt.Errorf("%s, %s: %w", srv.name, mode.name, err)
				}
				run.server, run.mode = si, mi
				runs = append(runs, run)
				if conf != "" {
					nginxConf = conf
				}
				fmt.Fprintf(&log, "=== round %d: %s, %s\n%s\n%s\nserver counted %d connections, %d requests %v\n\n",
					round+1, srv.name, mode.name, r.wrkConfig("http://ADDR/", mode, duration).Command(),
					run.wrk.Output, run.counts.conns, run.counts.requests, run.counts.perProcess)
				if err := checkHTTPRun(run, mode); err != nil {
					failures = append(failures, fmt.Errorf("%s, %s, round %d: %w", srv.name, mode.name, round+1, err))
				}
			}
		}
	}
	rawPath := filepath.Join(r.rawDir(), "http.txt")
	if err := os.WriteFile(rawPath, []byte(log.String()), 0o644); err != nil {
		return "", err
	}
	confPath := filepath.Join(r.rawDir(), "nginx.conf")
	if err := os.WriteFile(confPath, []byte(nginxConf), 0o644); err != nil {
		return "", err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "A minimal HTTP server (every request answered with `hello from pid N`) and nginx answering with "+
		"a fixed body of the same size (`return 200`), loaded by wrk with %d connections and %d threads for %v "+
		"(after %v of warm-up) against a freshly started server; each figure is the median of %d rounds, the "+
		"rounds interleaved across servers, and the range shows how much they varied. This machine has %d cores, "+
		"shared by the servers and wrk. Go servers run with the default GOMAXPROCS; nginx runs %d workers, each "+
		"with its own SO_REUSEPORT socket, as the Go processes have.\n\n",
		wrkConns, r.n, duration, warmup, rounds, runtime.NumCPU(), r.n)
	for mi, mode := range httpModes {
		fmt.Fprintf(&b, "### %s\n\n", capitalize(mode.name))
		fmt.Fprintf(&b, "`%s`\n\n", r.wrkConfig("http://127.0.0.1:PORT/", mode, duration).Command())
		b.WriteString("| server | requests/s | rounds' range | vs nginx | vs 1 process on net.Listen | p50 | p99 | requests per connection | requests per process |\n")
		b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---|\n")
		med := func(si int) float64 { return medianOf(runs, si, mi, func(h httpRun) float64 { return h.wrk.RPS() }) }
		for si, srv := range servers {
			rps := med(si)
			lo, hi := rangeOf(runs, si, mi, func(h httpRun) float64 { return h.wrk.RPS() })
			p50 := time.Duration(medianOf(runs, si, mi, func(h httpRun) float64 { return float64(h.wrk.P50) }))
			p99 := time.Duration(medianOf(runs, si, mi, func(h httpRun) float64 { return float64(h.wrk.P99) }))
			perConn := medianOf(runs, si, mi, func(h httpRun) float64 { return float64(h.counts.requests) / float64(max(h.counts.conns, 1)) })
			fmt.Fprintf(&b, "| %s | %.0f | %.0f–%.0f | %.2f× | %.2f× | %s | %s | %s | %s |\n", srv.name, rps, lo, hi,
				rps/med(httpNginx), rps/med(httpNetListen), roundDur(p50), roundDur(p99), perConnString(perConn),
				perProcess(runs, si, mi))
		}
		b.WriteString("\n")
	}
	b.WriteString("Requests per connection are the servers' own counts (Go: accepted connections and handled requests; " +
		"nginx: `stub_status`), which is how this run checks that wrk with `-H 'Connection: close'` really opens a " +
		"connection per request. Requests per process is each Go process's share of the requests in the last round.\n\n")
	fmt.Fprintf(&b, "Repeat: `%s`. wrk's full reports: `%s`; nginx's generated configuration: `%s`.\n",
		r.command("http"), r.rel(rawPath), r.rel(confPath))
	return b.String(), errors.Join(failures...)
}

func (r *runner) wrkConfig(url string, mode httpMode, duration time.Duration) wrk.Config {
	return wrk.Config{URL: url, Threads: r.n, Conns: wrkConns, Duration: duration, Close: mode.close}
}

// httpOne starts a fresh server, warms it up, measures, and stops it, so
// that its counters cover this run alone.
func (r *runner) httpOne(ctx context.Context, srv httpServer, mode httpMode, duration, warmup time.Duration) (httpRun, string, error) {
	t, err := srv.start(ctx, r)
	if err != nil {
		return httpRun{}, "", err
	}
	url := "http://" + t.addr + "/"
	var res wrk.Result
	if warmup > 0 {
		_, err = wrk.Run(ctx, r.wrkConfig(url, mode, warmup))
	}
	if err == nil {
		res, err = wrk.Run(ctx, r.wrkConfig(url, mode, duration))
	}
	counts, stopErr := t.stop()
	if err := errors.Join(err, stopErr); err != nil {
		return httpRun{}, "", err
	}
	return httpRun{wrk: res, counts: counts}, t.conf, nil
}

// checkHTTPRun fails a run whose figures cannot be trusted. It checks no
// speed.
func checkHTTPRun(run httpRun, mode httpMode) error {
	w, c := run.wrk, run.counts
	if errs := w.Errors.Total(); float64(errs) > maxErrorShare*float64(w.Requests) {
		return fmt.Errorf("wrk saw %d errors in %d requests: %+v", errs, w.Requests, w.Errors)
	}
	if c.requests < w.Requests {
		return fmt.Errorf("the server counted %d requests, fewer than the %d wrk completed", c.requests, w.Requests)
	}
	if mode.close && c.requests > c.conns {
		return fmt.Errorf("%d requests over %d connections, but every request should have had its own", c.requests, c.conns)
	}
	if !mode.close && c.requests < 10*c.conns {
		return fmt.Errorf("%d requests over %d connections; keep-alive should carry many per connection", c.requests, c.conns)
	}
	for i, p := range c.perProcess {
		if p == 0 {
			return fmt.Errorf("process %d of %d served no request: %v", i+1, len(c.perProcess), c.perProcess)
		}
	}
	return nil
}

func medianOf(runs []httpRun, server, mode int, f func(httpRun) float64) float64 {
	var v []float64
	for _, h := range runs {
		if h.server == server && h.mode == mode {
			v = append(v, f(h))
		}
	}
	if len(v) == 0 {
		return 0
	}
	return median(v)
}

func rangeOf(runs []httpRun, server, mode int, f func(httpRun) float64) (lo, hi float64) {
	var v []float64
	for _, h := range runs {
		if h.server == server && h.mode == mode {
			v = append(v, f(h))
		}
	}
	if len(v) == 0 {
		return 0, 0
	}
	return slices.Min(v), slices.Max(v)
}

// perProcess shows the share of requests each Go process served in the
// last round.
func perProcess(runs []httpRun, server, mode int) string {
	for i := len(runs) - 1; i >= 0; i-- {
		h := runs[i]
		if h.server != server || h.mode != mode {
			continue
		}
		if len(h.counts.perProcess) < 2 {
			return "–"
		}
		var parts []string
		for _, p := range h.counts.perProcess {
			parts = append(parts, fmt.Sprintf("%.0f%%", 100*float64(p)/float64(h.counts.requests)))
		}
		return strings.Join(parts, " / ")
	}
	return "–"
}

func perConnString(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func roundDur(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func capitalize(s string) string { return strings.ToUpper(s[:1]) + s[1:] }
