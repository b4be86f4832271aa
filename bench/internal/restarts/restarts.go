// Package restarts measures what restarting a server under load costs its
// clients, side by side: the example server (examples/httpserver) in two
// worker processes on one SO_REUSEPORT port, each replaced in turn either
// by a handoff or by a fresh process and SIGTERM to the old one (a plain
// reuseport deploy), with net.ipv4.tcp_migrate_req off and on; and nginx
// reloaded with nginx -s reload at the same pace; each against a run of the
// same server with no restart.
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
	"os"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/child"
	"github.com/b93f8b21/reuseport/internal/loadgen"
	"github.com/b93f8b21/reuseport/internal/netns"
	"github.com/b93f8b21/reuseport/internal/nginx"
	"github.com/b93f8b21/reuseport/internal/rolling"
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
)

// Nginx reports whether k runs nginx rather than the example server.
func (k Kind) Nginx() bool { return k == NginxReload || k == NginxSteady }

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
// its user.
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
	PerBin    []int
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
func runGo(ctx context.Context, plan Plan, sc Scenario) (*Row, error) {
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
	shutdown, handoffDir := "drain", ""
	switch sc.Kind {
	case Handoff:
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
	row := summarize(sc, res.Load, res.Restarts)
	row.Problems = res.Problems // stuck predecessors are among them
	return row, nil
}

// runNginx loads nginx and, for NginxReload, runs nginx -s reload every
// Interval.
func runNginx(ctx context.Context, plan Plan, sc Scenario) (*Row, error) {
	srv, err := nginx.Start(ctx, nginx.Config{Workers: plan.Workers})
	if err != nil {
		return nil, err
	}
	load := loadgen.Config{Addr: srv.Addr, Clients: plan.Clients, Duration: sc.Duration}
	if plan.Warmup > 0 {
		warm := load
		warm.Duration = plan.Warmup
		if _, err := loadgen.Run(ctx, warm); err != nil {
			srv.Stop()
			return nil, err
		}
	}
	type loaded struct {
		res *loadgen.Result
		err error
	}
	done := make(chan loaded, 1)
	began := time.Now() // to stop reloading when the load's time is up
	go func() {
		res, err := loadgen.Run(ctx, load)
		done <- loaded{res, err}
	}()
	var reloads []time.Time
	var reloadErr error
	var l loaded
	tick := make(<-chan time.Time) // never, for NginxSteady
	if sc.Kind == NginxReload {
		t := time.NewTicker(sc.Interval)
		defer t.Stop()
		tick = t.C
	}
wait:
	for {
		select {
		case l = <-done:
			break wait
		case <-tick:
			// As rolling does: no restart once the load's time is up.
			if reloadErr != nil || time.Since(began) >= sc.Duration {
				continue
			}
			if reloadErr = srv.Reload(); reloadErr == nil {
				reloads = append(reloads, time.Now())
			}
		}
	}
	stopErr := srv.Stop()
	if err := errors.Join(l.err, reloadErr, stopErr); err != nil {
		return nil, err
	}
	marks := make([]time.Duration, len(reloads))
	for i, at := range reloads {
		marks[i] = at.Sub(l.res.Began)
	}
	return summarize(sc, l.res, marks), nil
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
