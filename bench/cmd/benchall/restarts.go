package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/child"
	"github.com/b93f8b21/reuseport/bench/internal/plots"
	"github.com/b93f8b21/reuseport/bench/internal/restarts"
	"github.com/b93f8b21/reuseport/internal/test/loadgen"
	"github.com/b93f8b21/reuseport/internal/test/netns"
	"github.com/b93f8b21/reuseport/internal/test/nginx"
)

// The restart runs use two workers, as the restart test does, whatever -n
// says: what they measure is loss, not throughput.
const (
	restartWorkers  = 2
	restartClients  = 64
	restartInterval = 250 * time.Millisecond
	restartDuration = 10 * time.Second
	restartWarmup   = time.Second
	// The figures restart once a second, so that each restart can be told
	// apart from the next.
	figureInterval = time.Second
	figureDuration = 10 * time.Second
	figureWidth    = 100 * time.Millisecond
)

const examplePkg = "github.com/b93f8b21/reuseport/examples/httpserver"

// restartLabels name each kind of run for the table: the server, and how
// it is restarted.
var restartLabels = map[restarts.Kind][2]string{
	restarts.GoSteady:     {"example server", "none"},
	restarts.Handoff:      {"example server", "`-handoff` (drain)"},
	restarts.SignalDrain:  {"example server", "new process, SIGTERM to the old (drain)"},
	restarts.SignalStdlib: {"example server", "new process, SIGTERM to the old (`http.Server.Shutdown`)"},
	restarts.NginxSteady:  {"nginx", "none"},
	restarts.NginxReload:  {"nginx", "`nginx -s reload`"},

	restarts.ProxiedHandoff:     {"example server", "`-handoff` (drain)"},
	restarts.ProxiedSignalDrain: {"example server", "new process, SIGTERM to the old (drain)"},
	restarts.ProxiedNginxReload: {"nginx", "`nginx -s reload`"},
}

func (r *runner) restartScenarios() []restarts.Scenario {
	interval, duration := restartInterval, restartDuration
	fInterval, fDuration := figureInterval, figureDuration
	if r.short {
		duration, fInterval, fDuration = time.Second, 500*time.Millisecond, 2*time.Second
	}
	table := func(k restarts.Kind, migrate bool) restarts.Scenario {
		return restarts.Scenario{Kind: k, Migrate: migrate, Interval: interval, Duration: duration}
	}
	figure := func(k restarts.Kind) restarts.Scenario {
		return restarts.Scenario{Kind: k, Interval: fInterval, Duration: fDuration, Width: figureWidth}
	}
	rDuration := readmeDuration
	if r.short {
		rDuration = time.Second
	}
	readme := func(k restarts.Kind, migrate bool) restarts.Scenario {
		return restarts.Scenario{Kind: k, Migrate: migrate, Interval: interval, Duration: rDuration, README: true}
	}
	// Each server's rows without restarts come first and last, so that a
	// machine that slows down or speeds up during the run shows, and the
	// baseline is their mean, not one run's luck.
	return []restarts.Scenario{
		table(restarts.GoSteady, false),
		table(restarts.Handoff, false),
		table(restarts.Handoff, true),
		table(restarts.SignalDrain, false),
		table(restarts.SignalDrain, true),
		table(restarts.SignalStdlib, false),
		table(restarts.SignalStdlib, true),
		table(restarts.GoSteady, false),
		table(restarts.NginxSteady, false),
		// nginx keeps its listening sockets open through a reload, so
		// tcp_migrate_req has nothing to move: one row is enough.
		table(restarts.NginxReload, false),
		table(restarts.NginxSteady, false),
		// Behind a keep-alive proxy, where what is lost is requests sent
		// on kept connections, not connections in an accept queue.
		table(restarts.ProxiedHandoff, false),
		table(restarts.ProxiedSignalDrain, false),
		table(restarts.ProxiedNginxReload, false),
		figure(restarts.GoSteady),
		figure(restarts.Handoff),
		figure(restarts.SignalStdlib),
		figure(restarts.NginxReload),
		// README's own table: the example server's rows, longer.
		readme(restarts.Handoff, false),
		readme(restarts.Handoff, true),
		readme(restarts.SignalDrain, false),
		readme(restarts.SignalDrain, true),
		readme(restarts.SignalStdlib, false),
		readme(restarts.SignalStdlib, true),
	}
}

// needRoot is what the restart section needs to make a network namespace
// of its own, where it sets tcp_migrate_req without touching the host's.
func needRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the restarts section runs in a network namespace of its own, which needs root; " +
			"run as root, or pick the other sections with -sections")
	}
	return nil
}

// restartSection builds the example server, runs every scenario in a
// helper process in a network namespace of its own, and reports them side
// by side. It also makes README's restart figures, for [runner.writeReadme].
func (r *runner) restartSection(ctx context.Context) (string, error) {
	dir, err := os.MkdirTemp("", "benchall-restarts-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	// Without -race, as a deployment would build it.
	bin := filepath.Join(dir, "httpserver")
	if _, err := goCmd(r.benchDir, "build", "-o", bin, examplePkg); err != nil {
		return "", err
	}
	host, err := netns.ID()
	if err != nil {
		return "", err
	}
	plan := restarts.Plan{
		Server: bin, TempDir: dir, HostNetns: host, Workers: restartWorkers, Clients: restartClients,
		Warmup: restartWarmup, Scenarios: r.restartScenarios(),
	}
	if r.short {
		plan.Warmup = 200 * time.Millisecond
	}
	args, err := restarts.ChildArgs(plan)
	if err != nil {
		return "", err
	}
	// The helper stops at the run's deadline, or when this process closes
	// its standard input on an interrupt.
	p, err := child.StartIsolated(restarts.ChildRole, args, r.childDeadline())
	if err != nil {
		return "", err
	}
	// On an interrupt, end the helper, and with it every server it runs.
	defer context.AfterFunc(ctx, p.Kill)()
	var rows []restarts.Row
	for _, sc := range plan.Scenarios {
		var row restarts.Row
		if err := p.Recv(&row, plan.Warmup+sc.Duration+time.Minute); err != nil {
			p.Kill()
			return "", errors.Join(ctx.Err(), fmt.Errorf("%s, tcp_migrate_req=%v: %w", sc.Kind, sc.Migrate, err))
		}
		rows = append(rows, row)
	}
	if err := p.Stop(nil, childWait); err != nil {
		return "", err
	}
	raw, err := json.MarshalIndent(rows, "", "\t")
	if err != nil {
		return "", err
	}
	rawPath := filepath.Join(r.rawDir(), "restarts.json")
	if err := os.WriteFile(rawPath, raw, 0o644); err != nil {
		return "", err
	}
	return r.restartReport(rows, plan.Warmup, rawPath)
}

func (r *runner) restartReport(rows []restarts.Row, warmup time.Duration, rawPath string) (string, error) {
	var table, proxied, figures, long []restarts.Row
	for _, row := range rows {
		switch {
		case row.README:
			long = append(long, row)
		case row.Width > 0:
			figures = append(figures, row)
		case row.Kind.Proxied():
			proxied = append(proxied, row)
		default:
			table = append(table, row)
		}
	}
	baselines := map[bool]baseline{false: baselineOf(table, false), true: baselineOf(table, true)} // keyed by Kind.Nginx
	var b strings.Builder
	fmt.Fprintf(&b, "Two server processes share a port; %d clients of this repository's load client (`internal/test/loadgen`) "+
		"each open a new connection per request (HTTP/1.0, no retries) for %v per row, after %v of warm-up on freshly "+
		"started servers, and one worker is replaced every "+
		"%v, the workers in turn. The example server (`examples/httpserver`) is replaced either by a successor that takes "+
		"its socket through `-handoff`, or, as a plain SO_REUSEPORT deploy does, by a successor that binds a socket of "+
		"its own, after which the old process gets SIGTERM, closes its socket and drains. nginx (%d workers, `listen … "+
		"reuseport`, a fixed answer) gets `nginx -s reload` at the same pace. Everything runs in a network namespace of "+
		"its own, where `net.ipv4.tcp_migrate_req` is set as each row says; the host's is never touched.\n\n",
		restartClients, table[0].Duration, warmup, table[0].Interval, restartWorkers)
	b.WriteString("| server | restart | `tcp_migrate_req` | requests | restarts | failed | failures by kind | p50 | p99 | p99.9 | max | answered/s | vs no restarts | worst 100 ms |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	var problems []error
	seen := make(map[restarts.Kind]bool)
	for _, row := range table {
		label := restartLabels[row.Kind]
		if row.Kind.Steady() {
			label[1] = "none, first"
			if seen[row.Kind] {
				label[1] = "none, last"
			}
			seen[row.Kind] = true
		}
		base := baselines[row.Kind.Nginx()]
		migrate := "0"
		if row.Migrate {
			migrate = "1"
		}
		failed := fmt.Sprint(row.Requests - row.OK)
		if !row.Kind.Steady() && row.OK == row.Requests {
			failed = "**0**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %.0f | %.2f× | %.2f× |\n",
			label[0], label[1], migrate, row.Requests, len(row.Restarts), failed, kindsShort(row.Failures),
			roundDur(row.P50), roundDur(row.P99), roundDur(row.P999), roundDur(row.Max),
			answeredRate(row), answeredRate(row)/base.rate, worstBin(row)/base.bin)
		problems = append(problems, checkRestartRow(row))
	}
	fmt.Fprintf(&b, "\nLatencies are of every request, failed ones included, from connect to the end of the response. "+
		"*answered/s* counts the requests answered that started within the run. *vs no restarts* compares it with the "+
		"mean of the same server's two rows without restarts; *worst 100 ms* is the fewest requests answered in any "+
		"%v of the row, against the median %v of those two rows, so that it shows the dip a restart causes, which a "+
		"whole run averages away. The rows without restarts show how much both vary on their own. The first error of "+
		"each kind is in `%s`.\n\n", restarts.BinWidth, restarts.BinWidth, r.rel(rawPath))

	if len(proxied) > 0 {
		md, err := proxiedTable(proxied)
		b.WriteString(md)
		problems = append(problems, err)
	}

	b.WriteString("### Latency through restarts\n\n")
	fmt.Fprintf(&b, "The same setup with one worker replaced every %v, so that each restart stands apart, for %v; "+
		"dashed lines mark the instants a successor was ready (the example server) or `nginx -s reload` returned. "+
		"At the top, the latency of the requests answered in each %v interval, by when they started (p50, p99, max; log scale). "+
		"Below it, requests answered per second, and failed per second on a scale of its own, each request in the "+
		"interval it started in. The first figure, with no restart, is what to read the others against.\n\n", figures[0].Interval, figures[0].Duration, figureWidth)
	for _, row := range figures {
		label := restartLabels[row.Kind]
		title := fmt.Sprintf("%s, restart: %s", label[0], strings.ReplaceAll(label[1], "`", ""))
		marks := make([]plots.Mark, len(row.Restarts))
		for i, at := range row.Restarts {
			marks[i] = plots.Mark{At: at}
		}
		md, err := r.timelineFigure("restart-"+string(row.Kind), title, row.Intervals, row.Width, marks)
		if err != nil {
			return b.String(), err
		}
		b.WriteString(md)
		fmt.Fprintf(&b, "\n%d requests, %d restarts, %d failed%s; p99.9 %s, max %s.\n\n", row.Requests, len(row.Restarts),
			row.Requests-row.OK, kindsParen(row.Failures), roundDur(row.P999), roundDur(row.Max))
		problems = append(problems, checkRestartRow(row))
	}
	for _, row := range long {
		problems = append(problems, checkRestartRow(row))
	}
	r.readme = readmeFigures(long, proxied, warmup)
	fmt.Fprintf(&b, "Repeat: `%s` (as root). The same run also writes README.md's restart tables, whose rows of the "+
		"example server run %v each; `-update -out ..` puts them in README.md, between its markers.\n",
		r.command("restarts"), readmeDuration)
	return b.String(), errors.Join(problems...)
}

// proxiedTable reports the runs behind a keep-alive proxy.
func proxiedTable(rows []restarts.Row) (string, error) {
	var b strings.Builder
	b.WriteString("### Behind a keep-alive proxy\n\n")
	wc := restarts.WrkConfig("http://127.0.0.1:PORT/", restartClients, rows[0].Duration)
	fmt.Fprintf(&b, "The same restarts behind nginx as a reverse proxy (1 worker) that keeps connections to its upstream "+
		"alive, as nginx is most often deployed: `upstream { server …; keepalive %d; }`, `proxy_http_version 1.1`, "+
		"`proxy_set_header Connection \"\"`, and `proxy_next_upstream off`, so that a request lost on a kept "+
		"connection is answered 502 rather than retried. wrk posts a small body over %d keep-alive connections to "+
		"nginx for %v per row (`%s`) and one upstream worker of two is replaced every %v; `tcp_migrate_req` is 0. "+
		"Here a restart loses a request when a server closes a kept connection that nginx is sending the next "+
		"request on; nginx closing its idle connections at a reload, or `http.Server.Shutdown` closing the idle "+
		"ones at once, does that.\n\n",
		nginx.UpstreamKeepalive, restartClients, rows[0].Duration, wc.Command(), rows[0].Interval)
	b.WriteString("| upstream | restart | requests | restarts | failed | failures by kind | p50 | p99 | p99.9 | max | answered/s |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n")
	var problems []error
	for _, row := range rows {
		label := restartLabels[row.Kind]
		failed := 0
		for _, n := range row.Failures {
			failed += n
		}
		failedText := fmt.Sprint(failed)
		if failed == 0 {
			failedText = "**0**"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %.0f |\n",
			label[0], label[1], row.Requests, len(row.Restarts), failedText, kindsShort(row.Failures),
			roundDur(row.P50), roundDur(row.P99), roundDur(row.P999), roundDur(row.Max), answeredRate(row))
		problems = append(problems, checkRestartRow(row))
	}
	b.WriteString("\n*requests* are the responses wrk counted, 502s among them; *failed* counts its responses of 400 or " +
		"more (nginx's 502s) and its socket errors. Latencies are wrk's, of the requests that got a response, on " +
		"connections already open.\n\n")
	return b.String(), errors.Join(problems...)
}

// timelineFigure draws intervals of a run over time as
// docs/img/<name>.png, with marks (restart instants) drawn across it, and
// returns the markdown that shows it.
func (r *runner) timelineFigure(name, title string, ivs []loadgen.Interval, width time.Duration, marks []plots.Mark) (string, error) {
	img := filepath.Join(r.imgDir(), name+".png")
	if err := plots.Timeline(img, title, ivs, width, marks); err != nil {
		return "", err
	}
	return fmt.Sprintf("![%s](%s)\n", title, r.rel(img)), nil
}

// checkRestartRow fails a row whose setup broke: a server that did not
// start or did not leave, a run with nothing answered, restarts that did
// not happen, or a server that dropped requests with no restart at all.
// Failures caused by restarts are the measurement, not an error.
func checkRestartRow(row restarts.Row) error {
	name := fmt.Sprintf("%s, tcp_migrate_req=%v", row.Kind, row.Migrate)
	switch {
	case len(row.Problems) > 0:
		return fmt.Errorf("%s: %s", name, strings.Join(row.Problems, "; "))
	case row.OK == 0:
		return fmt.Errorf("%s: no request was answered%s", name, kindsParen(row.Failures))
	case row.Kind.Steady() && row.OK < row.Requests:
		return fmt.Errorf("%s: %d of %d requests failed with no restart%s", name, row.Requests-row.OK, row.Requests, kindsParen(row.Failures))
	case !row.Kind.Steady() && len(row.Restarts) == 0:
		return fmt.Errorf("%s: no restart happened in %v", name, row.Duration)
	}
	return nil
}

// baseline is what a server does with no restart: its answered rate and
// the median number of requests it answers per restarts.BinWidth.
type baseline struct {
	rate, bin float64
}

// baselineOf pools the rows without restarts of nginx or of the example
// server.
func baselineOf(rows []restarts.Row, nginx bool) baseline {
	var rates, bins []float64
	for _, row := range rows {
		if !row.Kind.Steady() || row.Kind.Nginx() != nginx {
			continue
		}
		rates = append(rates, answeredRate(row))
		for _, n := range row.PerBin {
			bins = append(bins, float64(n))
		}
	}
	if len(rates) == 0 || len(bins) == 0 {
		return baseline{math.NaN(), math.NaN()}
	}
	mean := 0.0
	for _, r := range rates {
		mean += r / float64(len(rates))
	}
	return baseline{mean, median(bins)}
}

// answeredRate is the requests answered per second of the run. Every
// counted request started within Duration, so that is what it divides by,
// not the run's elapsed time, which one slow last request could stretch.
func answeredRate(row restarts.Row) float64 { return float64(row.OK) / row.Duration.Seconds() }

// worstBin is the fewest requests row answered in one bin.
func worstBin(row restarts.Row) float64 {
	if len(row.PerBin) == 0 {
		return math.NaN()
	}
	return float64(slices.Min(row.PerBin))
}

// kindsShort lists failures by kind, the most frequent first.
func kindsShort(failures map[string]int) string {
	if len(failures) == 0 {
		return "—"
	}
	kinds := kindsByCount(failures)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, failures[k])
	}
	return strings.Join(parts, ", ")
}

// kindsByCount are the kinds of failures, the most frequent first.
func kindsByCount(failures map[string]int) []string {
	return slices.SortedFunc(maps.Keys(failures), func(a, b string) int {
		if failures[a] != failures[b] {
			return failures[b] - failures[a]
		}
		return strings.Compare(a, b)
	})
}

func kindsParen(failures map[string]int) string {
	if len(failures) == 0 {
		return ""
	}
	return " (" + kindsShort(failures) + ")"
}
