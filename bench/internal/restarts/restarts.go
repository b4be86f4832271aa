// Package restarts measures what restarting a server under load costs its
// clients, side by side: the example server (examples/httpserver) in two
// worker processes on one SO_REUSEPORT port, each replaced in turn either
// by a handoff or by a fresh process and SIGTERM to the old one (a plain
// reuseport deploy), with net.ipv4.tcp_migrate_req off and on; and nginx
// reloaded with nginx -s reload at the same pace; each against a run of the
// same server with no restart. The same restarts are also run behind nginx
// as a reverse proxy that keeps connections to its upstream alive, loaded
// by wrk posting over keep-alive connections.
//
// It runs as a helper process of benchall in a network namespace of its
// own, where it may set tcp_migrate_req and load 127.0.0.1 as hard as it
// likes without touching the host.
package restarts

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/child"
	"github.com/b93f8b21/reuseport/internal/test/loadgen"
	"github.com/b93f8b21/reuseport/internal/test/netns"
	"github.com/b93f8b21/reuseport/internal/test/nginx"
	"github.com/b93f8b21/reuseport/internal/test/rolling"
	"github.com/b93f8b21/reuseport/internal/test/wrk"
)

// ChildRole names the helper process that runs a [Plan].
const ChildRole = "restarts"

// Kind is a way of restarting a server, or none.
type Kind string

const (
	Handoff      Kind = "handoff"        // the successor takes the sockets; the predecessor drains and leaves
	SignalDrain  Kind = "sigterm-drain"  // a fresh socket for the successor; SIGTERM, close, drain with package drain
	SignalStdlib Kind = "sigterm-stdlib" // the same with plain http.Server.Shutdown
	GoSteady     Kind = "go-steady"      // the example server, never restarted
	NginxReload  Kind = "nginx-reload"   // nginx -s reload
	NginxSteady  Kind = "nginx-steady"   // nginx, never reloaded

	// The same, behind a keep-alive proxy (see [Kind.Proxied]).
	ProxiedHandoff     Kind = "proxied-handoff"
	ProxiedSignalDrain Kind = "proxied-sigterm-drain"
	ProxiedNginxReload Kind = "proxied-nginx-reload"
)

// Nginx reports whether k runs nginx rather than the example server.
func (k Kind) Nginx() bool { return k == NginxReload || k == NginxSteady || k == ProxiedNginxReload }

// Proxied reports whether k runs its servers behind nginx as a reverse
// proxy (one worker, [nginx.UpstreamKeepalive] kept connections to them, no
// retry of a request on another connection), loaded by wrk posting
// [PostBody] over keep-alive connections (see [WrkConfig]), rather than by
// loadgen opening a connection per request.
func (k Kind) Proxied() bool {
	return k == ProxiedHandoff || k == ProxiedSignalDrain || k == ProxiedNginxReload
}

// PostBody is what every request of a proxied run posts.
const PostBody = "a small form, as a browser or an API client posts it\n"

// WrkConfig is the load of a proxied run: wrk posting PostBody to url over
// conns keep-alive connections for d.
func WrkConfig(url string, conns int, d time.Duration) wrk.Config {
	return wrk.Config{URL: url, Threads: 2, Conns: conns, Duration: d, Method: http.MethodPost, Body: PostBody}
}

// proxiedLoad is loadgen's nearest to [WrkConfig], for the warm-up of a
// proxied run.
func proxiedLoad(addr string, clients int, d time.Duration) loadgen.Config {
	return loadgen.Config{Addr: addr, Clients: clients, Duration: d, KeepAlive: true, Method: http.MethodPost, Body: PostBody}
}

// startProxy runs nginx as a keep-alive proxy in front of upstream.
func startProxy(ctx context.Context, upstream string) (*nginx.Server, error) {
	// One worker: one pool of kept connections.
	return nginx.Start(ctx, nginx.Config{Workers: 1, Upstream: upstream})
}

// Steady reports whether k restarts nothing.
func (k Kind) Steady() bool { return k == GoSteady || k == NginxSteady }

// Scenario is one run.
type Scenario struct {
	Kind    Kind
	Migrate bool // net.ipv4.tcp_migrate_req
	// Interval is the time between restarts, workers in turn.
	Interval time.Duration
	Duration time.Duration
	// Width, if positive, keeps the run's intervals of that width, for a
	// figure.
	Width time.Duration
	// README marks a row of docs/restarts.md's restart table rather than of
	// BENCHMARKS.md's.
	README bool `json:",omitempty"`
}

// Plan is what the helper runs, in order.
type Plan struct {
	Server string // the example server's binary
	// TempDir holds every file the helper and its servers make, so that
	// the parent, which removes it, leaves nothing behind however the
	// helper ends.
	TempDir   string
	HostNetns string // the namespace the helper must not be in
	Workers   int    // server processes, and nginx workers
	Clients   int    // concurrent clients, each opening a connection per request
	// Warmup loads each scenario's fresh servers for this long before the
	// measured run, and discards what it saw.
	Warmup    time.Duration
	Scenarios []Scenario
}

// Row is what one scenario saw. Latencies are of every request, failed
// ones included: a request that waited 3s and then failed is a 3s stall to
// its user. In a proxied row, Requests and the latencies are wrk's: its
// responses, 502s among them, and Failures counts its responses of 400 or
// more and its socket errors.
type Row struct {
	Scenario
	Requests, OK int
	Failures     map[string]int
	Examples     map[string]string // the first error of each kind
	// Restarts are the instants, from the start of the load, at which a
	// successor was ready (the example server) or nginx -s reload returned.
	Restarts            []time.Duration
	P50, P99, P999, Max time.Duration
	Elapsed             time.Duration
	// PerBin counts the requests answered in each whole BinWidth of the
	// run, by when they started.
	PerBin    []int              // none in a proxied row
	Intervals []loadgen.Interval // of Width, if it was set
	// Problems are servers that failed to start, exited with an error, or
	// stayed after they were replaced.
	Problems []string
}

// BinWidth is the width of the intervals in [Row.PerBin]: narrow enough
// that a restart every 250ms leaves bins without one, so that the dip a
// restart causes is not averaged away.
const BinWidth = 100 * time.Millisecond

// ErrHostNetns is why the helper refuses to run in the host's network
// namespace.
var ErrHostNetns = errors.New("the restart benchmark runs only in a network namespace of its own")

// ChildArgs are the arguments for a helper that runs plan.
func ChildArgs(plan Plan) ([]string, error) {
	b, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	return []string{"-plan", string(b)}, nil
}

// ChildMain is the body of a helper started with [ChildArgs] in a network
// namespace of its own. It sends a [Row] for each scenario as it ends.
func ChildMain(args []string) error {
	fs := flag.NewFlagSet(ChildRole, flag.ContinueOnError)
	planJSON := fs.String("plan", "", "the Plan to run, as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var plan Plan
	if err := json.Unmarshal([]byte(*planJSON), &plan); err != nil {
		return fmt.Errorf("-plan: %w", err)
	}
	here, err := netns.ID()
	if err != nil {
		return err
	}
	if plan.HostNetns == "" || here == plan.HostNetns {
		return fmt.Errorf("%w, and this is the host's, %s", ErrHostNetns, here)
	}
	if err := netns.LoopbackUp(); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	if plan.TempDir != "" {
		// os.MkdirTemp("", …) here and in package nginx.
		os.Setenv("TMPDIR", plan.TempDir)
	}
	ctx, cancel := context.WithDeadline(context.Background(), child.Deadline())
	defer cancel()
	go func() {
		<-child.StopRequested()
		cancel()
	}()
	for _, sc := range plan.Scenarios {
		// A run cut short by a stop request is not a measurement.
		row, err := run(ctx, plan, sc)
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("%s, tcp_migrate_req=%v: %w", sc.Kind, sc.Migrate, err)
		}
		if err := child.Send(row); err != nil {
			return err
		}
	}
	return nil
}

func run(ctx context.Context, plan Plan, sc Scenario) (*Row, error) {
	value := "0"
	if sc.Migrate {
		value = "1"
	}
	if err := netns.SetSysctl(plan.HostNetns, "net/ipv4/tcp_migrate_req", value); err != nil {
		return nil, err
	}
	if sc.Kind.Nginx() {
		return runNginx(ctx, plan, sc)
	}
	return runGo(ctx, plan, sc)
}

// runGo restarts the example server with package rolling.
func runGo(ctx context.Context, plan Plan, sc Scenario) (row *Row, err error) {
	// A fresh port per run: nothing of the previous run (TIME_WAIT, a
	// straggler) can touch this one. Nothing else binds in this namespace.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := rolling.Config{
		ReadyLine: rolling.ExampleReady,
		Workers:   plan.Workers,
		Interval:  sc.Interval,
		Mode:      rolling.Signal,
		Load:      loadgen.Config{Addr: addr, Clients: plan.Clients, Duration: sc.Duration},
		Warmup:    plan.Warmup,
	}
	if sc.Kind.Proxied() {
		var proxy *nginx.Server
		if proxy, err = startProxy(ctx, addr); err != nil {
			return nil, err
		}
		// Stopped after the servers behind it, which rolling.Run stops.
		defer func() { err = errors.Join(err, proxy.Stop()) }()
		cfg.Load = proxiedLoad(proxy.Addr, plan.Clients, sc.Duration)
		cfg.External = func(ctx context.Context, d time.Duration) (any, error) {
			return wrk.Run(ctx, WrkConfig("http://"+proxy.Addr+"/", plan.Clients, d))
		}
	}
	shutdown, handoffDir := "drain", ""
	switch sc.Kind {
	case Handoff, ProxiedHandoff:
		cfg.Mode = rolling.Handoff
		if handoffDir, err = os.MkdirTemp("", "benchall-handoff-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(handoffDir)
	case SignalStdlib:
		shutdown = "stdlib"
	case GoSteady:
		// rolling replaces a worker every Interval until the load ends:
		// one longer than the run replaces none.
		cfg.Interval = 2 * sc.Duration
	}
	cfg.Command = rolling.ExampleServer(plan.Server, addr, shutdown, handoffDir)
	res, err := rolling.Run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if sc.Kind.Proxied() {
		row = summarizeWrk(sc, res.External.(wrk.Result), res.Restarts)
	} else {
		row = summarize(sc, res.Load, res.Restarts)
	}
	row.Problems = res.Problems // stuck predecessors are among them
	return row, nil
}

// runNginx loads nginx, directly or, for ProxiedNginxReload, through a
// keep-alive proxy, and for a reloading kind runs nginx -s reload every
// Interval.
func runNginx(ctx context.Context, plan Plan, sc Scenario) (row *Row, err error) {
	srv, err := nginx.Start(ctx, nginx.Config{Workers: plan.Workers})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, srv.Stop()) }()
	load := loadgen.Config{Addr: srv.Addr, Clients: plan.Clients, Duration: sc.Duration}
	if sc.Kind.Proxied() {
		var proxy *nginx.Server
		if proxy, err = startProxy(ctx, srv.Addr); err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, proxy.Stop()) }()
		load = proxiedLoad(proxy.Addr, plan.Clients, sc.Duration)
	}
	if plan.Warmup > 0 {
		warm := load
		warm.Duration = plan.Warmup
		if _, err := loadgen.Run(ctx, warm); err != nil {
			return nil, err
		}
	}
	// The measured load sets began, from which the reloads are marked.
	var (
		began time.Time
		lres  *loadgen.Result
		wres  wrk.Result
	)
	reloads, err := reloadDuring(srv, sc, func() (err error) {
		if sc.Kind.Proxied() {
			began = time.Now()
			wres, err = wrk.Run(ctx, WrkConfig("http://"+load.Addr+"/", plan.Clients, sc.Duration))
			return err
		}
		if lres, err = loadgen.Run(ctx, load); lres != nil {
			began = lres.Began
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	marks := make([]time.Duration, len(reloads))
	for i, at := range reloads {
		marks[i] = at.Sub(began)
	}
	if sc.Kind.Proxied() {
		return summarizeWrk(sc, wres, marks), nil
	}
	return summarize(sc, lres, marks), nil
}

// reloadDuring runs measure and, unless sc is steady, nginx -s reload on
// srv every sc.Interval while it runs, as rolling restarts workers: none
// once sc.Duration is up, and none after one failed. It returns the
// instants at which the reloads returned.
func reloadDuring(srv *nginx.Server, sc Scenario, measure func() error) ([]time.Time, error) {
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- measure() }()
	var reloads []time.Time
	var reloadErr error
	tick := make(<-chan time.Time) // never, for a steady kind
	if !sc.Kind.Steady() {
		t := time.NewTicker(sc.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case err := <-done:
			return reloads, errors.Join(err, reloadErr)
		case <-tick:
			if reloadErr != nil || time.Since(began) >= sc.Duration {
				continue
			}
			if reloadErr = srv.Reload(); reloadErr == nil {
				reloads = append(reloads, time.Now())
			}
		}
	}
}

// summarizeWrk is summarize for a proxied run, from what wrk can tell: no
// per-request samples, so no bins and no intervals.
func summarizeWrk(sc Scenario, res wrk.Result, restarts []time.Duration) *Row {
	failures := make(map[string]int)
	for kind, n := range map[string]int64{
		"status ≥ 400": res.Errors.Status, "connect": res.Errors.Connect, "read": res.Errors.Read,
		"write": res.Errors.Write, "timeout": res.Errors.Timeout,
	} {
		if n > 0 {
			failures[kind] = int(n)
		}
	}
	return &Row{
		Scenario: sc,
		Requests: int(res.Requests), OK: int(res.Requests - res.Errors.Status),
		Failures: failures, Restarts: restarts,
		P50: res.P50, P99: res.P99, P999: res.P999, Max: res.Max,
		Elapsed: res.Duration,
	}
}

func summarize(sc Scenario, res *loadgen.Result, restarts []time.Duration) *Row {
	row := &Row{
		Scenario: sc,
		Requests: res.Requests(), OK: res.OK(),
		Failures: res.Failures, Examples: res.Examples,
		Restarts: restarts,
		P50:      res.Percentile(0.5), P99: res.Percentile(0.99), P999: res.Percentile(0.999), Max: res.Max(),
		Elapsed: res.Elapsed,
	}
	for _, iv := range res.Intervals(BinWidth) {
		// Only whole bins: the last may be cut short by the end.
		if iv.At+BinWidth <= sc.Duration {
			row.PerBin = append(row.PerBin, iv.OK)
		}
	}
	if sc.Width > 0 {
		row.Intervals = res.Intervals(sc.Width)
	}
	return row
}
