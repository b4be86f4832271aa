package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
	"github.com/b93f8b21/reuseport/internal/test/rolling"
	"github.com/b93f8b21/reuseport/internal/test/rolling/rollingtest"
	"github.com/b93f8b21/reuseport/internal/test/tooltest"
)

// dnsperf's load: on each transport, this many clients (on TCP, this many
// connections, kept open) sending at most qps queries a second between
// them, each lost if unanswered within queryTimeout.
const (
	dnsperfClients = 4
	dnsperfQPS     = 5000
)

// TestRollingDnsperf loads the restarts with dnsperf, on UDP and on TCP at
// once, with -handoff and then without (the control of
// TestRollingSignalGoClients), and prints the four figures side by side.
// It asserts that UDP loses nothing with -handoff. dnsperf keeps its TCP
// connections open and sends queries ahead on them: a stopping generation
// closes them, and the queries it had not read are lost, with -handoff
// too. Those figures are printed, not asserted.
func TestRollingDnsperf(t *testing.T) {
	bin := buildServer(t)
	tooltest.Need(t, dnsperfAvailable)
	if nstest.Isolate(t) {
		return
	}
	queries := filepath.Join(t.TempDir(), "queries")
	if err := os.WriteFile(queries, []byte("www.example.test A\n"+testName+" TXT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-8s %-4s %9s %9s %6s %13s %8s\n", "mode", "net", "sent", "completed", "lost", "reconnections", "restarts")
	for _, mode := range []rolling.Mode{rolling.Handoff, rolling.Signal} {
		res, udp, tcp := rollingDnsperf(t, bin, mode, queries)
		checkRun(t, res)
		for _, r := range []*dnsperfResult{udp, tcp} {
			fmt.Fprintf(&table, "%-8v %-4s %9d %9d %6d %13d %8d\n", mode, r.Mode, r.Sent, r.Completed, r.Lost, r.Reconnections, len(res.Restarts))
			if r.Sent == 0 || r.Completed == 0 {
				t.Errorf("%v, %s: dnsperf sent %d queries, %d completed; want a load", mode, r.Mode, r.Sent, r.Completed)
			}
		}
		if mode == rolling.Handoff && udp.Lost != 0 {
			t.Errorf("handoff, udp: dnsperf lost %d of %d queries across %d restarts; want none", udp.Lost, udp.Sent, len(res.Restarts))
		}
		// dnsperf keeps its TCP connections open and pipelines queries on
		// them. With Service.Sequential each restart hands the connections
		// themselves to the successor, idle, with the queries on their way
		// waiting in the socket: none is lost and dnsperf never reconnects.
		// A plain restart closes them (48 reconnections here, and queries
		// lost with them).
		if mode == rolling.Handoff && (tcp.Lost != 0 || tcp.Reconnections != 0) {
			t.Errorf("handoff, tcp kept open: dnsperf lost %d of %d queries and reconnected %d times across %d restarts; want none of either",
				tcp.Lost, tcp.Sent, tcp.Reconnections, len(res.Restarts))
		}
		if mode == rolling.Signal && tcp.Reconnections == 0 {
			t.Errorf("signal, tcp: dnsperf never reconnected across %d restarts: the control did not close its connections", len(res.Restarts))
		}
	}
	t.Logf("dnsperf, %d clients a transport, at most %d queries/s each, across restarts of one server every %v:\n%s", dnsperfClients, dnsperfQPS, restartEvery, &table)
}

// rollingDnsperf runs one worker under two dnsperf processes, one on UDP
// and one on TCP, restarting it as mode says.
func rollingDnsperf(t *testing.T, bin string, mode rolling.Mode, queries string) (res *rolling.Result, udp, tcp *dnsperfResult) {
	t.Helper()
	addr := rollingtest.Addr(t)
	res = rollingtest.Run(t, rolling.Config{
		Command:  rolling.Server(bin, addr, handoffDir(t, mode), "-zone", testZone),
		Workers:  1,
		Interval: restartEvery,
		Mode:     mode,
		Load:     loadgen.Config{Duration: runFor},
		External: func(ctx context.Context, d time.Duration) (any, error) {
			var wg sync.WaitGroup
			var uerr, terr error
			wg.Go(func() { udp, uerr = dnsperf(ctx, "udp", addr, queries, d) })
			wg.Go(func() { tcp, terr = dnsperf(ctx, "tcp", addr, queries, d) })
			wg.Wait()
			return fmt.Sprintf("dnsperf udp: %v; tcp: %v", udp, tcp), errors.Join(uerr, terr)
		},
	})
	return res, udp, tcp
}

// dnsperfResult is what dnsperf printed.
type dnsperfResult struct {
	Mode                                 string
	Sent, Completed, Lost, Reconnections int
}

func (r *dnsperfResult) String() string {
	return fmt.Sprintf("sent=%d completed=%d lost=%d reconnections=%d", r.Sent, r.Completed, r.Lost, r.Reconnections)
}

// dnsperf runs dnsperf on mode ("udp" or "tcp") against addr for d, and
// reads its statistics.
func dnsperf(ctx context.Context, mode, addr, queries string, d time.Duration) (*dnsperfResult, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	// dnsperf stops sending after -l, then waits at most -t for the last
	// answers: bounded by d + queryTimeout, and by ctx.
	ctx, cancel := context.WithTimeout(ctx, d+queryTimeout+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dnsperf", "-m", mode, "-s", host, "-p", port, "-d", queries,
		"-l", strconv.FormatFloat(d.Seconds(), 'f', 1, 64), "-t", strconv.Itoa(int(queryTimeout.Seconds())),
		"-c", strconv.Itoa(dnsperfClients), "-Q", strconv.Itoa(dnsperfQPS))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%v: %w\n%s", cmd.Args, err, out)
	}
	r := &dnsperfResult{Mode: mode}
	for _, f := range []struct {
		label string
		n     *int
		need  bool
	}{{"Queries sent", &r.Sent, true}, {"Queries completed", &r.Completed, true}, {"Queries lost", &r.Lost, true}, {"Reconnections", &r.Reconnections, false}} {
		m := regexp.MustCompile(`(?m)^\s*` + f.label + `:\s+(\d+)`).FindSubmatch(out)
		if m == nil {
			if f.need {
				return nil, fmt.Errorf("%v printed no %q:\n%s", cmd.Args, f.label, out)
			}
			continue
		}
		*f.n, _ = strconv.Atoi(string(m[1]))
	}
	return r, nil
}

// dnsperfAvailable reports whether dnsperf can be run.
func dnsperfAvailable() error {
	if _, err := exec.LookPath("dnsperf"); err != nil {
		return fmt.Errorf("dnsperf is not installed (on Debian: apt-get install -y dnsperf): %w", err)
	}
	return nil
}
