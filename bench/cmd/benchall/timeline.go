package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/httpserver"
	"github.com/b93f8b21/reuseport/bench/internal/load"
	"github.com/b93f8b21/reuseport/bench/internal/plots"
)

const (
	timelineClients  = 64
	timelineDuration = 10 * time.Second
)

// timelineSection loads the multi-process reuseport server with the Go load
// client, which keeps every request, and draws its latency second by
// second. Nothing is restarted here: it shows the figure a restart run
// draws (see timelineFigure) on a steady server, as the baseline such a
// run is read against.
func (r *runner) timelineSection(ctx context.Context) (string, error) {
	duration, width := timelineDuration, time.Second
	if r.short {
		duration, width = 2*time.Second, 250*time.Millisecond
	}
	g, err := r.startGoServers(httpserver.ListenReuseport, r.n, 1)
	if err != nil {
		return "", err
	}
	cfg := load.Config{Addr: g.addr, Clients: timelineClients, Duration: duration}
	res, loadErr := load.Run(ctx, cfg)
	if _, err := g.stop(); err != nil || loadErr != nil {
		return "", errors.Join(loadErr, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The Go server on `reuseport.Listen` in %d processes, loaded for %v by %d clients of this "+
		"repository's own load client (`bench/internal/load`), one request per connection. Unlike wrk it keeps "+
		"every request, so a run can be cut into intervals; the restart benchmarks draw this same figure with "+
		"the restart instants marked, and this steady run is what to read them against.\n\n",
		r.n, duration, timelineClients)
	md, err := r.timelineFigure("timeline", fmt.Sprintf("reuseport, %d processes, steady load", r.n), res, width, nil)
	b.WriteString(md)
	fmt.Fprintf(&b, "\nRepeat: `%s`.\n", r.command("timeline"))
	return b.String(), err
}

// timelineFigure draws res over time as docs/img/<name>.png, with marks
// (restart instants, say) drawn across it, and returns the markdown that
// shows it and its totals. It fails if the run had no successful request,
// or any failed one and no marks: a steady server must not drop requests.
// A restart section reports its failures itself, from res.Totals().
func (r *runner) timelineFigure(name, title string, res *load.Result, width time.Duration, marks []plots.Mark) (string, error) {
	img := filepath.Join(r.imgDir(), name+".png")
	if err := plots.Timeline(img, title, res.Intervals(width), width, marks); err != nil {
		return "", err
	}
	t := res.Totals()
	var b strings.Builder
	fmt.Fprintf(&b, "![%s](%s)\n\n", title, r.rel(img))
	fmt.Fprintf(&b, "Top: latency of the requests started in each %v interval (p50, p99, max; log scale). "+
		"Bottom: requests answered and failed per second.\n\n", width)
	fmt.Fprintf(&b, "%d requests in %v: %d answered (%.0f/s), %d failed%s; latency p50 %s, p99 %s, max %s.\n",
		t.Requests, res.Elapsed.Round(time.Millisecond), t.OK, float64(t.OK)/res.Elapsed.Seconds(),
		t.Requests-t.OK, failureKinds(t, res), roundDur(t.P50), roundDur(t.P99), roundDur(t.Max))
	switch {
	case t.OK == 0:
		return b.String(), fmt.Errorf("%s: no request was answered%s", title, failureKinds(t, res))
	case t.Requests > t.OK && len(marks) == 0:
		return b.String(), fmt.Errorf("%s: %d of %d requests failed under steady load%s", title, t.Requests-t.OK, t.Requests, failureKinds(t, res))
	}
	return b.String(), nil
}

// failureKinds lists failures by kind with the first message of each.
func failureKinds(t load.Totals, res *load.Result) string {
	if len(t.Failures) == 0 {
		return ""
	}
	kinds := make([]load.Failure, 0, len(t.Failures))
	for f := range t.Failures {
		kinds = append(kinds, f)
	}
	slices.Sort(kinds)
	var parts []string
	for _, f := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s (first: %s)", t.Failures[f], f, res.FirstErrors[f]))
	}
	return " (" + strings.Join(parts, "; ") + ")"
}
