package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

// The load of every scenario, as issue 12 measured it: three copies on one
// port, 60 long-lived connections per copy each sending a GET every 100ms,
// and clients opening a new connection per GET.
const (
	copies       = 3
	longClients  = 60 * copies
	shortClients = 4
	getInterval  = 100 * time.Millisecond
)

// A change made to the group under load.
type change string

const (
	joins    change = "a copy joins (3 -> 4)"
	leaves   change = "a copy leaves on SIGTERM (3 -> 2)"
	restarts change = "a copy restarts with -handoff"
)

// TestSteerJoin: a copy that joins the group breaks no connection of the
// others, and takes new connections at once.
func TestSteerJoin(t *testing.T) {
	if elsewhere(t) {
		return
	}
	r := runChange(t, joins, true)
	r.wantLossless(t)
	if r.tally.newBy[r.changed] == 0 {
		t.Errorf("the copy that joined (pid %d) got no new connection: %v", r.changed, r.tally.newBy)
	}
}

// TestSteerLeave: a copy that leaves drains its connections (GOAWAY, every
// request answered) and breaks none of the others'.
func TestSteerLeave(t *testing.T) {
	if elsewhere(t) {
		return
	}
	r := runChange(t, leaves, true)
	r.wantLossless(t)
	r.wantDrained(t)
}

// TestSteerRestart: a copy replaced through -handoff finishes its own
// connections while its successor, on a socket of its own, takes every new
// one; the other copies lose nothing.
func TestSteerRestart(t *testing.T) {
	if elsewhere(t) {
		return
	}
	r := runChange(t, restarts, true)
	r.wantLossless(t)
	r.wantDrained(t)
	if r.tally.newBy[r.successor] == 0 {
		t.Errorf("the successor (pid %d) got no new connection: %v", r.successor, r.tally.newBy)
	}
}

// The controls: the same changes with -steer=false, where the kernel's
// hash moves flows between sockets. If none broke, the harness could not
// see what steering prevents.

func TestNoSteerJoinBreaks(t *testing.T) {
	if !elsewhere(t) {
		runChange(t, joins, false).wantBreakage(t)
	}
}

func TestNoSteerLeaveBreaks(t *testing.T) {
	if !elsewhere(t) {
		runChange(t, leaves, false).wantBreakage(t)
	}
}

func TestNoSteerRestartBreaks(t *testing.T) {
	if !elsewhere(t) {
		runChange(t, restarts, false).wantBreakage(t)
	}
}

// elsewhere runs the calling test where it is to run: in the test binary
// built without -race, in a network namespace of its own. It reports true
// once the test has run there; the caller then returns at once.
func elsewhere(t *testing.T) bool {
	t.Helper()
	if testing.Short() {
		t.Skip("a load test of about 15s; not in -short")
	}
	buildServer(t)
	return servercmdtest.OutsideRace(t, "quicserver.test") || nstest.Isolate(t)
}

// result is what one run saw.
type result struct {
	change    change
	steer     bool
	sum       summary
	tally     *tally
	changed   int // pid of the copy that joined, left or was replaced
	successor int // pid of the replacement, for restarts
	others    []int
	// The other copies' connections established before the change, and
	// how many of them broke.
	othersAtChange, othersBroken int
}

// wantLossless fails unless no connection broke and no new one failed.
func (r *result) wantLossless(t *testing.T) {
	t.Helper()
	if r.sum.broken != 0 {
		t.Errorf("%d connections broke (%d of the other copies'; %s)", r.sum.broken, except(r.sum.brokenBy, r.changed), sortedReasons(r.sum.reasons))
	}
	if n := len(r.tally.newFails); n != 0 {
		t.Errorf("%d of %d new connections failed: %s", n, r.tally.newConns, summarize(r.tally.newFails))
	}
}

// wantDrained fails unless the copy that stopped had connections and
// every one of them ended with a GOAWAY after its last request was
// answered.
func (r *result) wantDrained(t *testing.T) {
	t.Helper()
	n, c := r.sum.connsBy[r.changed], r.sum.cleanBy[r.changed]
	if n == 0 || c == 0 {
		t.Errorf("the copy that stopped (pid %d) had %d connections, %d closed after a GOAWAY; want some", r.changed, n, c)
	}
	if b := r.sum.brokenBy[r.changed]; b != 0 {
		t.Errorf("%d of the %d connections of the copy that stopped broke", b, n)
	}
}

// wantBreakage fails unless the change broke connections of the other
// copies or failed new connections.
func (r *result) wantBreakage(t *testing.T) {
	t.Helper()
	if r.othersBroken == 0 && len(r.tally.newFails) == 0 {
		t.Errorf("without steering, %s broke none of the %d connections of the other copies and failed no new connection: the harness does not see what steering prevents", r.change, r.othersAtChange)
	}
}

// runChange runs three copies under load, makes the change, and counts
// what the clients saw.
func runChange(t *testing.T, what change, steer bool) *result {
	t.Helper()
	pc, err := reuseport.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr)
	pc.Close()

	f := newFleet(t, addr.String(), steer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("servers' log:\n%s", f.log())
		}
	})
	handoff := what == restarts
	procs := make([]*servercmdtest.Proc, copies)
	for w := range procs {
		procs[w] = f.start(w, handoff)
	}

	tl := new(tally)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range longClients {
		wg.Go(func() { longClient(ctx, addr, tl, getInterval) })
	}
	for range shortClients {
		wg.Go(func() { shortClient(ctx, addr, tl) })
	}
	defer func() {
		cancel()
		wg.Wait()
	}()

	// Wait until the long-lived connections are established, then let
	// them run a second.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if s := tl.summary(); s.conns >= longClients {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)

	r := &result{change: what, steer: steer, tally: tl}
	changeAt := time.Now()
	switch what {
	case joins:
		p := f.start(copies, false)
		r.changed = p.PID
		for _, q := range procs {
			r.others = append(r.others, q.PID)
		}
	case leaves:
		p := procs[copies-1]
		r.changed = p.PID
		for _, q := range procs[:copies-1] {
			r.others = append(r.others, q.PID)
		}
		p.Stop(t, syscall.SIGTERM)
	case restarts:
		p := procs[0]
		r.changed = p.PID
		for _, q := range procs[1:] {
			r.others = append(r.others, q.PID)
		}
		r.successor = f.start(0, true).PID
		if err := p.Wait(t); err != nil {
			t.Errorf("the predecessor, pid %d: %v", p.PID, err)
		}
	}
	// Long enough for a connection that lost its socket to miss a
	// request's deadline.
	time.Sleep(requestTimeout + time.Second)
	cancel()
	wg.Wait()

	r.sum = tl.summary()
	tl.mu.Lock()
	for _, c := range tl.conns {
		if contains(r.others, c.pid) && c.at.Before(changeAt) {
			r.othersAtChange++
			if c.end == broken {
				r.othersBroken++
			}
		}
	}
	tl.mu.Unlock()
	t.Logf("steer=%v, %s: %d requests answered on %d connections; other copies' connections broken: %d of %d; the changed copy (pid %d): %d connections, %d closed after GOAWAY, %d broken; all broken: %d (%s); new connections: %d, failed %d (%s), per pid %v; requests retried after GOAWAY: %d not sent, %d rejected",
		steer, what, r.sum.requests, r.sum.conns, r.othersBroken, r.othersAtChange,
		r.changed, r.sum.connsBy[r.changed], r.sum.cleanBy[r.changed], r.sum.brokenBy[r.changed],
		r.sum.broken, sortedReasons(r.sum.reasons), tl.newConns, len(tl.newFails), summarize(tl.newFails), tl.newBy, tl.goaway, tl.rejected)
	// For bench/cmd/benchall, which puts these in BENCHMARKS.md.
	fig, _ := json.Marshal(figures{
		Steer: steer, Change: string(what), Requests: r.sum.requests, Conns: r.sum.conns,
		OthersAtChange: r.othersAtChange, OthersBroken: r.othersBroken,
		ChangedConns: r.sum.connsBy[r.changed], ChangedClean: r.sum.cleanBy[r.changed], ChangedBroken: r.sum.brokenBy[r.changed],
		NewConns: tl.newConns, NewFailed: len(tl.newFails), Retried: tl.goaway + tl.rejected,
	})
	t.Logf("figures: %s", fig)
	return r
}

// figures is one run's counts, as the test logs them for benchall.
type figures struct {
	Steer          bool   `json:"steer"`
	Change         string `json:"change"`
	Requests       int    `json:"requests"`         // answered
	Conns          int    `json:"conns"`            // long-lived connections established
	OthersAtChange int    `json:"others_at_change"` // the other copies' connections when the change began
	OthersBroken   int    `json:"others_broken"`    // of those, broken
	ChangedConns   int    `json:"changed_conns"`    // the changed copy's connections
	ChangedClean   int    `json:"changed_clean"`    // of those, closed after GOAWAY with every request answered
	ChangedBroken  int    `json:"changed_broken"`
	NewConns       int    `json:"new_conns"`  // connections opened
	NewFailed      int    `json:"new_failed"` // of those, failed
	Retried        int    `json:"retried"`    // requests sent again after a GOAWAY, as HTTP/3 says
}

// summarize counts a list of failures by message.
func summarize(errs []string) string {
	m := make(map[string]int)
	for _, e := range errs {
		if i := strings.LastIndex(e, ": "); i >= 0 && len(e) > 80 {
			e = e[i+2:]
		}
		m[e]++
	}
	return sortedReasons(m)
}
