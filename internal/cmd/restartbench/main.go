// Command restartbench measures what rolling restarts of the example HTTP
// server (examples/httpserver) cost its clients, and prints the figures as
// text and as a markdown table:
//
//	go run ./internal/cmd/restartbench -duration 60s
//
// Two workers share a port; 64 clients each open a new connection per
// request (HTTP/1.0, no retries), after a second of warm-up; one worker is
// replaced every 250ms, in turn. Each way of replacing a worker runs with
// net.ipv4.tcp_migrate_req set to 0 and to 1:
//
//   - handoff: the successor takes the listening socket through -handoff,
//     and the predecessor drains and exits by itself;
//   - signal, drain: the successor binds its own socket, then the
//     predecessor gets SIGTERM, closes its socket and drains;
//   - signal, stdlib: the same with plain http.Server.Shutdown.
//
// It must run as root: it re-executes itself in a private network namespace,
// where it sets tcp_migrate_req without touching the host's setting, and
// builds the server once, without -race, into a temporary directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/loadgen"
	"github.com/b93f8b21/reuseport/internal/netns"
	"github.com/b93f8b21/reuseport/internal/rolling"
)

// The parent passes these to the child it starts in a new namespace.
const (
	envHostNetns = "RESTARTBENCH_HOST_NETNS" // the parent's namespace, which the child must not be in
	envServer    = "RESTARTBENCH_SERVER"     // the server binary the parent built
)

const serverPkg = "github.com/b93f8b21/reuseport/examples/httpserver"

type options struct {
	duration time.Duration
	clients  int
	workers  int
	interval time.Duration
	verbose  bool
	only     *regexp.Regexp
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "length of each of the six runs")
	flag.IntVar(&o.clients, "clients", 64, "concurrent clients, each opening a new connection per request")
	flag.IntVar(&o.workers, "workers", 2, "server processes sharing the port")
	flag.DurationVar(&o.interval, "interval", 250*time.Millisecond, "time between two successor starts, workers in turn")
	flag.BoolVar(&o.verbose, "v", false, "copy every server's log to stderr")
	only := flag.String("run", "", "run only the scenarios whose description (as printed) matches this `regexp`")
	flag.Parse()
	var err error
	if o.only, err = regexp.Compile(*only); err != nil {
		fmt.Fprintf(os.Stderr, "restartbench: -run: %v\n", err)
		os.Exit(2)
	}
	if flag.NArg() > 0 || o.duration <= 0 || o.clients <= 0 || o.workers <= 0 || o.interval <= 0 {
		fmt.Fprintln(os.Stderr, "restartbench: takes flags only, each positive")
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if os.Getenv(envHostNetns) == "" {
		err = parent(ctx)
	} else {
		err = child(ctx, o)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "restartbench: %v\n", err)
		os.Exit(1)
	}
}

// parent builds the server and runs this program again in a new network
// namespace, with the same arguments.
func parent(ctx context.Context) error {
	host, err := netns.ID()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "restartbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "httpserver")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, serverPkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building %s: %w", serverPkg, err)
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envHostNetns+"="+host, envServer+"="+bin)
	if err := newNetns(cmd); err != nil {
		return err
	}
	if err := cmd.Run(); err != nil {
		if cmd.ProcessState == nil && os.Geteuid() != 0 {
			return fmt.Errorf("making a private network namespace needs root: %w", err)
		}
		return err
	}
	return nil
}

// scenario is one way of replacing a worker.
type scenario struct {
	name     string
	mode     rolling.Mode
	shutdown string // the server's -shutdown
	migrate  bool   // net.ipv4.tcp_migrate_req
}

func scenarios() []scenario {
	var s []scenario
	for _, migrate := range []bool{false, true} {
		s = append(s,
			scenario{"handoff", rolling.Handoff, "drain", migrate},
			scenario{"signal", rolling.Signal, "drain", migrate},
			scenario{"signal", rolling.Signal, "stdlib", migrate},
		)
	}
	return s
}

// run is what one scenario saw.
type run struct {
	scenario
	res *rolling.Result
}

func child(ctx context.Context, o options) error {
	// Refuse to write a sysctl anywhere but in a namespace of our own.
	here, err := netns.ID()
	if err != nil {
		return err
	}
	if here == os.Getenv(envHostNetns) {
		return fmt.Errorf("still in the host's network namespace %s; refusing to set sysctls", here)
	}
	if err := netns.LoopbackUp(); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	fmt.Printf("restartbench: %d workers, %d clients, a successor every %v, %v per run\nmachine: %s\n\n",
		o.workers, o.clients, o.interval, o.duration, machine())

	var runs []run
	for _, sc := range scenarios() {
		if !o.only.MatchString(sc.String()) {
			continue
		}
		res, err := runScenario(ctx, o, sc)
		if err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
		fmt.Printf("%s:\n  %s\n\n", sc, strings.ReplaceAll(res.String(), "\n", "\n  "))
		runs = append(runs, run{sc, res})
	}
	printTable(os.Stdout, runs)
	return nil
}

// machine describes where the figures come from, for the reader who
// compares them with their own.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimLeft(name, " \t:"))
				break
			}
		}
	}
	kernel := "kernel unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "kernel " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores, %s, %s/%s, %s", cpu, runtime.NumCPU(), kernel, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func (s scenario) String() string {
	m := 0
	if s.migrate {
		m = 1
	}
	return fmt.Sprintf("%s, -shutdown %s, tcp_migrate_req=%d", s.name, s.shutdown, m)
}

func runScenario(ctx context.Context, o options, sc scenario) (*rolling.Result, error) {
	value := "0"
	if sc.migrate {
		value = "1"
	}
	if err := netns.SetSysctl(os.Getenv(envHostNetns), "net/ipv4/tcp_migrate_req", value); err != nil {
		return nil, err
	}
	if on, err := reuseport.MigratesRequests(); err != nil || on != sc.migrate {
		return nil, fmt.Errorf("tcp_migrate_req reads back as %v (%v)", on, err)
	}
	// A fresh port per run: nothing of the previous run (TIME_WAIT, a
	// straggler) can touch this one. Nobody else binds in this namespace.
	ln, err := reuseport.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	var handoffDir string
	if sc.mode == rolling.Handoff {
		if handoffDir, err = os.MkdirTemp("", "restartbench"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(handoffDir)
	}

	var log io.Writer
	if o.verbose {
		log = os.Stderr
	}
	return rolling.Run(ctx, rolling.Config{
		Command:   rolling.ExampleServer(os.Getenv(envServer), addr, sc.shutdown, handoffDir),
		ReadyLine: rolling.ExampleReady,
		Workers:   o.workers,
		Interval:  o.interval,
		Mode:      sc.mode,
		Load:      loadgen.Config{Addr: addr, Clients: o.clients, Duration: o.duration},
		// A fresh server's first few hundred milliseconds are slow
		// whatever happens to it; they are not what a restart costs.
		Warmup: time.Second,
		Log:    log,
	})
}

func printTable(w io.Writer, runs []run) {
	fmt.Fprintln(w, "| restart | shutdown | tcp_migrate_req | requests | restarts | failed | failures by kind | p50 | p99 | p99.9 | max |")
	fmt.Fprintln(w, "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
	for _, r := range runs {
		l := r.res.Load
		m := 0
		if r.migrate {
			m = 1
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %d | %s | %s | %s | %s | %s |\n",
			r.name, r.shutdown, m, l.Requests(), len(r.res.Restarts), l.Failed(), kinds(l),
			ms(l.Percentile(0.5)), ms(l.Percentile(0.99)), ms(l.Percentile(0.999)), ms(l.Max()))
	}
	for _, r := range runs {
		if r.res.Stuck > 0 || len(r.res.Problems) > 0 {
			fmt.Fprintf(w, "\n%s: %d stuck, problems: %s\n", r.scenario, r.res.Stuck, strings.Join(r.res.Problems, "; "))
		}
	}
}

func kinds(l *loadgen.Result) string {
	if len(l.Failures) == 0 {
		return "—"
	}
	var k []string
	for kind, n := range l.Failures {
		k = append(k, fmt.Sprintf("%s %d", kind, n))
	}
	slices.Sort(k)
	return strings.Join(k, ", ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
