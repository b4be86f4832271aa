package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/bench/internal/child"
	"github.com/b93f8b21/reuseport/bench/internal/plots"
	"github.com/b93f8b21/reuseport/bench/internal/spread"
)

// spreadSetup is one way of having n servers on a port.
type spreadSetup struct {
	name string
	// shared is true when the n servers take turns on one socket: then how
	// they share is up to the scheduler, and a server with nothing is a
	// result to report, not a failure.
	shared bool
	start  func(r *runner, n int) (*spreadServers, error)
}

var spreadSetups = []spreadSetup{
	{"SO_REUSEPORT: a socket per process", false, startReuseportProcs},
	{"SO_REUSEPORT: n sockets, one process", false, startReuseportGroup},
	{"prefork: one socket, n processes", true, startInheritedProcs},
	{"one socket, n accept loops", true, startAcceptLoops},
}

// spreadServers are n servers of one setup, answering on addr.
type spreadServers struct {
	addr string
	// stop stops every server and returns how many connections each one
	// answered, which must agree with the client's tally.
	stop func() ([]int, error)
}

const (
	spreadConns   = 10_000
	spreadWorkers = 32 // connections in flight at once
)

var spreadSizes = []int{2, 4, 8}

func (r *runner) spreadSection(ctx context.Context) (string, error) {
	total := spreadConns
	if r.short {
		total = 1_000
	}
	var results []spread.Result
	var failures []error
	for _, setup := range spreadSetups {
		for _, n := range spreadSizes {
			res, err := r.spreadOne(ctx, setup, n, total)
			if err != nil {
				return "", fmt.Errorf("%s, n=%d: %w", setup.name, n, err)
			}
			results = append(results, res)
			if !setup.shared && slices.Min(res.Counts) == 0 {
				failures = append(failures, fmt.Errorf("%s, n=%d: a listener got no connection: %v", res.Setup, n, res.Counts))
			}
		}
	}

	raw := filepath.Join(r.rawDir(), "spread.txt")
	var rawText strings.Builder
	for _, res := range results {
		fmt.Fprintf(&rawText, "%s\tn=%d\t%v\n", res.Setup, len(res.Counts), res.Counts)
	}
	if err := os.WriteFile(raw, []byte(rawText.String()), 0o644); err != nil {
		return "", err
	}
	img := filepath.Join(r.imgDir(), "spread.png")
	var panels []plots.BarPanel
	for _, res := range results {
		pct := res.Shares()
		for i := range pct {
			pct[i] *= 100
		}
		panels = append(panels, plots.BarPanel{
			Title:  fmt.Sprintf("%s\nn=%d, max/min %s", res.Setup, len(res.Counts), maxMin(res)),
			Values: pct,
			Even:   100 / float64(len(res.Counts)),
		})
	}
	if err := plots.SpreadBars(img, len(spreadSizes), panels); err != nil {
		return "", err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%d connections to 127.0.0.1, %d in flight at a time, for each setup and each n. Every server "+
		"answers a connection with one byte naming itself and closes it; the client's tally of those bytes is the "+
		"count (and must equal what the servers say they answered). The shared-socket setups are the "+
		"alternatives SO_REUSEPORT replaces, for contrast: there the kernel wakes every waiting process (or Go "+
		"hands the socket to one accept loop at a time), and whoever is fastest gets the connection.\n\n", total, spreadWorkers)
	b.WriteString("| setup | n | connections per server | lowest–highest share | max/min |\n|---|---:|---|---|---:|\n")
	for _, res := range results {
		shares := res.Shares()
		fmt.Fprintf(&b, "| %s | %d | %s | %.1f%%–%.1f%% | %s |\n", res.Setup, len(res.Counts),
			joinInts(res.Counts), 100*slices.Min(shares), 100*slices.Max(shares), maxMin(res))
	}
	fmt.Fprintf(&b, "\n![Share of connections per server](%s)\n\n", r.rel(img))
	b.WriteString("Bars: each server's share of the connections; dashed red line: an even share. " +
		"Panels in a column have the same n and the same scale.\n\n")
	fmt.Fprintf(&b, "Repeat: `%s`. Raw counts: `%s`.\n", r.command("spread"), r.rel(raw))
	return b.String(), errors.Join(failures...)
}

func (r *runner) spreadOne(ctx context.Context, setup spreadSetup, n, total int) (spread.Result, error) {
	srv, err := setup.start(r, n)
	if err != nil {
		return spread.Result{}, err
	}
	counts, dialErr := spread.Dial(ctx, srv.addr, total, spreadWorkers, n)
	served, stopErr := srv.stop()
	if err := errors.Join(dialErr, stopErr); err != nil {
		return spread.Result{}, err
	}
	if !slices.Equal(counts, served) {
		return spread.Result{}, fmt.Errorf("the client counted %v but the servers answered %v", counts, served)
	}
	return spread.Result{Setup: setup.name, Counts: counts}, nil
}

func maxMin(res spread.Result) string {
	if slices.Min(res.Counts) == 0 {
		return "∞"
	}
	return fmt.Sprintf("%.2f", res.MaxMin())
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, " ")
}

// childWait bounds how long a helper process may take to start or stop.
const childWait = 10 * time.Second

func startReuseportProcs(r *runner, n int) (*spreadServers, error) {
	return startSpreadProcs(r, n, nil)
}

// startInheritedProcs is the prefork model: one listener, made here and
// passed to every child as descriptor 3.
func startInheritedProcs(r *runner, n int) (*spreadServers, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// This process never accepts; its copies close once the children hold
	// theirs.
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return startSpreadProcs(r, n, f)
}

// startSpreadProcs starts n children, each with its own SO_REUSEPORT
// socket, or, if inherited is not nil, each serving that one.
func startSpreadProcs(r *runner, n int, inherited *os.File) (*spreadServers, error) {
	var procs []*child.Proc
	kill := func() {
		for _, p := range procs {
			p.Kill()
		}
	}
	addr := "127.0.0.1:0"
	var extra []*os.File
	if inherited != nil {
		extra = []*os.File{inherited}
	}
	for id := range n {
		p, err := child.Start(spread.ChildRole, spread.ChildArgs(id, addr, inherited != nil), extra, r.childDeadline())
		if err != nil {
			kill()
			return nil, err
		}
		procs = append(procs, p)
		var ready spread.ChildReady
		if err := p.Recv(&ready, childWait); err != nil {
			kill()
			return nil, err
		}
		// The first child's port, picked by the kernel, is the one the
		// others join.
		addr = ready.Addr
	}
	return &spreadServers{addr: addr, stop: func() ([]int, error) {
		served := make([]int, n)
		var errs []error
		for id, p := range procs {
			var done spread.ChildDone
			errs = append(errs, p.Stop(&done, childWait))
			served[id] = done.Served
		}
		return served, errors.Join(errs...)
	}}, nil
}

func startReuseportGroup(_ *runner, n int) (*spreadServers, error) {
	lns, err := reuseport.ListenGroup("tcp", "127.0.0.1:0", n)
	if err != nil {
		return nil, err
	}
	return serveInProcess(lns[0].Addr().String(), lns, lns), nil
}

func startAcceptLoops(_ *runner, n int) (*spreadServers, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	loops := make([]net.Listener, n)
	for i := range loops {
		loops[i] = ln
	}
	return serveInProcess(ln.Addr().String(), loops, []net.Listener{ln}), nil
}

// serveInProcess runs one accept loop per entry of loops, loop i answering
// with i; stopping closes toClose.
func serveInProcess(addr string, loops, toClose []net.Listener) *spreadServers {
	served := make([]int, len(loops))
	errs := make([]error, len(loops))
	var wg sync.WaitGroup
	for i, ln := range loops {
		wg.Go(func() { served[i], errs[i] = spread.Serve(ln, byte(i)) })
	}
	return &spreadServers{addr: addr, stop: func() ([]int, error) {
		for _, ln := range toClose {
			ln.Close()
		}
		wg.Wait()
		return served, errors.Join(errs...)
	}}
}
