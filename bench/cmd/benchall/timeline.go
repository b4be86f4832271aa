package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/httpserver"
	"github.com/b93f8b21/reuseport/bench/internal/plots"
	"github.com/b93f8b21/reuseport/internal/loadgen"
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
	cfg := loadgen.Config{Addr: g.addr, Clients: timelineClients, Duration: duration}
	res, loadErr := loadgen.Run(ctx, cfg)
	if _, err := g.stop(); err != nil || loadErr != nil {
		return "", errors.Join(loadErr, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The Go server on `reuseport.Listen` in %d processes, loaded for %v by %d clients of this "+
		"repository's own load client (`internal/loadgen`), one request per connection. Unlike wrk it keeps "+
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
// A restart section reports its failures itself.
func (r *runner) timelineFigure(name, title string, res *loadgen.Result, width time.Duration, marks []plots.Mark) (string, error) {
	img := filepath.Join(r.imgDir(), name+".png")
	if err := plots.Timeline(img, title, res.Intervals(width), width, marks); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "![%s](%s)\n\n", title, r.rel(img))
	fmt.Fprintf(&b, "Top: latency of the requests answered in each %v interval, by when they started (p50, p99, max; log scale). "+
		"Bottom: requests answered and failed per second.\n\n", width)
	fmt.Fprintf(&b, "%d requests in %v: %d answered (%.0f/s), %d failed%s; latency p50 %s, p99 %s, max %s.\n",
		res.Requests(), res.Elapsed.Round(time.Millisecond), res.OK(), float64(res.OK())/res.Elapsed.Seconds(),
		res.Failed(), failureKinds(res), roundDur(res.Percentile(0.5)), roundDur(res.Percentile(0.99)), roundDur(res.Max()))
	switch {
	case res.OK() == 0:
		return b.String(), fmt.Errorf("%s: no request was answered%s", title, failureKinds(res))
	case res.Failed() > 0 && len(marks) == 0:
		return b.String(), fmt.Errorf("%s: %d of %d requests failed under steady load%s", title, res.Failed(), res.Requests(), failureKinds(res))
	}
	return b.String(), nil
}

// failureKinds lists failures by kind with the first message of each.
func failureKinds(res *loadgen.Result) string {
	if len(res.Failures) == 0 {
		return ""
	}
	var parts []string
	for _, kind := range slices.Sorted(maps.Keys(res.Failures)) {
		parts = append(parts, fmt.Sprintf("%d %s (first: %s)", res.Failures[kind], kind, res.Examples[kind]))
	}
	return " (" + strings.Join(parts, "; ") + ")"
}
