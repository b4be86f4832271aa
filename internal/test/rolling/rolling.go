// Package rolling restarts server processes under load and reports what the
// clients saw: the harness behind the restart stress test and the restart
// benchmark. Each worker is replaced in turn, one successor every Interval.
//
// Three ways to replace a worker are compared:
//   - Handoff: start the successor; it takes the predecessor's sockets and
//     the predecessor drains and exits by itself.
//   - Signal: start the successor (a fresh bind on the shared port), wait
//     until it serves, then SIGTERM the predecessor, as a plain reuseport
//     deploy does.
//   - Crash: SIGKILL the predecessor, then start the successor: what a
//     crash and a supervisor's restart look like to the clients.
//
// Package rollingtest holds what the tests built on Run share: the
// standard run and the checks of a lossless run and of its control.
package rolling

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
)

// Mode is how a worker is replaced.
type Mode int

const (
	Handoff Mode = iota // the predecessor leaves by itself after the successor is ready
	Signal              // the harness sends SIGTERM to the predecessor once the successor is ready
	Crash               // the harness sends SIGKILL to the predecessor, then starts the successor
)

func (m Mode) String() string {
	switch m {
	case Signal:
		return "signal"
	case Crash:
		return "crash"
	}
	return "handoff"
}

// Config describes a rolling-restart run.
type Config struct {
	// Command makes the process for one generation of one worker. It must
	// write ReadyLine to its stderr once it serves.
	Command   func(worker, generation int) *exec.Cmd
	ReadyLine string
	Workers   int           // 0 means 2
	Interval  time.Duration // between successor starts, workers in turn; 0 means 250ms
	Mode      Mode
	Load      loadgen.Config // its Duration is the length of the run
	// External, if set, makes the measured load in place of loadgen: a
	// program such as wrk, or clients through a proxy that Load cannot
	// describe. Run calls it once, when the workers serve, with
	// Load.Duration, and replaces workers until it returns or that time is
	// up; it must return soon after d. What it returns is Result.External
	// and Run's error. Warmup, if set, still runs loadgen as Load says.
	External func(ctx context.Context, d time.Duration) (any, error)
	// Linger is how long after the load ends a predecessor may still run
	// before it counts as stuck; 0 means 5s.
	Linger time.Duration
	// StartTimeout bounds the wait for ReadyLine; 0 means 10s.
	StartTimeout time.Duration
	// Warmup, if positive, loads the first generation for that long, as
	// Load says, before the measured run begins; what it sees is
	// discarded. A freshly started server and load client are slow for
	// their first few hundred milliseconds, which is not what a restart
	// costs.
	Warmup time.Duration
	// Log, if set, receives every server's stderr and the harness's notes.
	Log io.Writer
}

// Result is what a run saw.
type Result struct {
	Load     *loadgen.Result // nil if Config.External made the load
	External any             // what Config.External returned
	// Began is when the measured load began: Load.Began, or when
	// Config.External was called.
	Began time.Time
	// Restarts are the instants at which successors became ready, from
	// Began, in order. Successors start only within the load's Duration;
	// one may become ready just after it.
	Restarts []time.Duration
	// Stuck counts predecessors still running Linger after the load ended.
	Stuck int
	// Problems lists servers that failed to start or exited with an error.
	Problems []string
}

func (r *Result) String() string {
	var load any = r.Load
	if r.Load == nil {
		load = r.External
	}
	s := fmt.Sprintf("restarts=%d stuck=%d %v", len(r.Restarts), r.Stuck, load)
	for _, p := range r.Problems {
		s += "\n  problem: " + p
	}
	return s
}

type proc struct {
	name   string
	cmd    *exec.Cmd
	ready  chan struct{}
	exited chan struct{}
	err    error // set before exited is closed
}

type harness struct {
	cfg   Config
	logMu sync.Mutex
	mu    sync.Mutex
	procs []*proc
	notes []string
}

func (h *harness) logf(format string, args ...any) {
	if h.cfg.Log == nil {
		return
	}
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.cfg.Log, format+"\n", args...)
}

func (h *harness) problem(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, fmt.Sprintf(format, args...))
}

func (h *harness) start(worker, gen int) (*proc, error) {
	cmd := h.cfg.Command(worker, gen)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{name: fmt.Sprintf("w%d.g%d", worker, gen), cmd: cmd, ready: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			if !seen && strings.Contains(sc.Text(), h.cfg.ReadyLine) {
				seen = true
				close(p.ready)
			}
			h.logf("%s(pid %d): %s", p.name, cmd.Process.Pid, sc.Text())
		}
	}()
	go func() {
		<-lines // Wait closes the pipe: read it all first
		p.err = cmd.Wait()
		if p.err != nil && !signalled(p.err) {
			h.problem("%s exited: %v", p.name, p.err)
		}
		close(p.exited)
	}()
	return p, nil
}

func (h *harness) waitReady(p *proc) error {
	select {
	case <-p.ready:
		return nil
	case <-p.exited:
		return fmt.Errorf("%s exited before it served: %v", p.name, p.err)
	case <-time.After(h.cfg.StartTimeout):
		return fmt.Errorf("%s did not print %q within %v", p.name, h.cfg.ReadyLine, h.cfg.StartTimeout)
	}
}

// Run starts the workers, puts them under load, replaces one every
// Interval until the load ends, and stops them all before it returns. If
// ctx ends first, Run returns what it saw so far and ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Command == nil || cfg.ReadyLine == "" {
		return nil, errors.New("rolling: Config.Command and Config.ReadyLine are required")
	}
	if cfg.Load.Duration <= 0 {
		return nil, errors.New("rolling: Config.Load.Duration sets the length of the run and must be positive")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 5 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	h := &harness{cfg: cfg}
	defer h.stopAll()

	current := make([]*proc, cfg.Workers)
	for w := range current {
		p, err := h.start(w, 0)
		if err != nil {
			return nil, err
		}
		if err := h.waitReady(p); err != nil {
			return nil, err
		}
		current[w] = p
	}

	if cfg.Warmup > 0 {
		warm := cfg.Load
		warm.Duration, warm.Requests = cfg.Warmup, 0
		if _, err := loadgen.Run(ctx, warm); err != nil {
			return nil, err
		}
	}

	res := &Result{}
	loadDone := make(chan struct{})
	var loadErr error
	began := time.Now()
	go func() {
		defer close(loadDone)
		if cfg.External != nil {
			res.Began = time.Now()
			res.External, loadErr = cfg.External(ctx, cfg.Load.Duration)
			return
		}
		res.Load, loadErr = loadgen.Run(ctx, cfg.Load)
		if res.Load != nil {
			res.Began = res.Load.Began
		}
	}()

	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	gen := 1
	var wg sync.WaitGroup
	var readyMu sync.Mutex
	var readyAt []time.Time
loop:
	for {
		select {
		case <-loadDone:
			break loop
		case <-tick.C:
		}
		if time.Since(began) >= cfg.Load.Duration {
			// The last requests are finishing: a restart now would
			// touch none of them and only make the count wrong.
			tick.Stop()
			continue
		}
		w := (gen - 1) % cfg.Workers
		old := current[w]
		// Replace a worker only once its current generation serves: on a
		// slow machine a generation may take longer to start than a round
		// of restarts, and killing it then would leave the slot empty.
		select {
		case <-old.ready:
		case <-old.exited: // died starting; replace it all the same
		default:
			continue
		}
		if cfg.Mode == Crash {
			// Killing one still starting would be counted as its failure
			// to start: crash it once it serves.
			select {
			case <-old.ready:
			case <-old.exited:
			case <-time.After(cfg.StartTimeout):
			}
			old.cmd.Process.Kill()
			<-old.exited
		}
		next, err := h.start(w, gen)
		if err != nil {
			h.problem("starting w%d.g%d: %v", w, gen, err)
			continue
		}
		current[w] = next
		gen++
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := h.waitReady(next)
			if err != nil {
				h.problem("%v", err)
			} else {
				readyMu.Lock()
				readyAt = append(readyAt, time.Now())
				readyMu.Unlock()
			}
			if cfg.Mode != Signal {
				return
			}
			// A predecessor still starting up may not handle SIGTERM yet,
			// and would die of it instead of draining: wait until it
			// serves, or has gone. It is stopped even when its successor
			// failed (a problem already), else nothing ever stops it and
			// it would be reported stuck as well.
			select {
			case <-old.ready:
			case <-old.exited:
				return
			case <-time.After(cfg.StartTimeout): // it never served: a problem already
			}
			old.cmd.Process.Signal(syscall.SIGTERM)
		}()
	}
	wg.Wait()
	// The load's own clock, so that the instants line up with its samples.
	for _, at := range readyAt {
		res.Restarts = append(res.Restarts, at.Sub(res.Began))
	}
	slices.Sort(res.Restarts)

	// Every predecessor must be gone within Linger of the end.
	lingerCtx, cancel := context.WithTimeout(context.Background(), cfg.Linger)
	defer cancel()
	h.mu.Lock()
	procs := append([]*proc(nil), h.procs...)
	h.mu.Unlock()
	isCurrent := make(map[*proc]bool)
	for _, p := range current {
		isCurrent[p] = true
	}
	for _, p := range procs {
		if isCurrent[p] {
			continue
		}
		// Once lingerCtx has ended select would pick either case at
		// random, and report some that exited as stuck: look first.
		select {
		case <-p.exited:
			continue
		default:
		}
		select {
		case <-p.exited:
		case <-lingerCtx.Done():
			res.Stuck++
			h.problem("%s (pid %d) still running %v after the load ended", p.name, p.cmd.Process.Pid, cfg.Linger)
		}
	}
	h.mu.Lock()
	res.Problems = append(res.Problems, h.notes...)
	h.mu.Unlock()
	// A run cut short is still reported, with the reason.
	return res, errors.Join(loadErr, ctx.Err())
}

// stopAll ends every process still running: SIGTERM, then SIGKILL after
// Linger, the time a server is given to leave anyway.
func (h *harness) stopAll() {
	h.mu.Lock()
	procs := append([]*proc(nil), h.procs...)
	h.mu.Unlock()
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Linger)
	defer cancel()
	for _, p := range procs {
		select {
		case <-p.exited:
		case <-ctx.Done():
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
}
