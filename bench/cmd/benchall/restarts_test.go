package main

import (
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/restarts"
	"github.com/b93f8b21/reuseport/internal/test/loadgen"
)

// TestRestartReport renders the section from made-up rows whose figures
// are known, and checks the ratios the table derives from them.
func TestRestartReport(t *testing.T) {
	const d = time.Second
	bins := func(n, worst int) []int {
		b := make([]int, 10)
		for i := range b {
			b[i] = n
		}
		b[3] = worst
		return b
	}
	row := func(k restarts.Kind, ok, failed int, perBin []int, restartsAt ...time.Duration) restarts.Row {
		r := restarts.Row{
			Scenario: restarts.Scenario{Kind: k, Interval: 250 * time.Millisecond, Duration: d},
			Requests: ok + failed, OK: ok, Restarts: restartsAt, PerBin: perBin,
			// A slow last request: the rate must not depend on it.
			Elapsed: 3 * d,
		}
		if failed > 0 {
			r.Failures = map[string]int{"read: reset": failed}
		}
		return r
	}
	ivs := []loadgen.Interval{{At: 0, OK: 5, P50: time.Millisecond, P99: time.Millisecond, Max: time.Millisecond}}
	figure := func(k restarts.Kind) restarts.Row {
		r := row(k, 5, 0, nil, 500*time.Millisecond)
		r.Width, r.Intervals = 100*time.Millisecond, ivs
		return r
	}
	rows := []restarts.Row{
		row(restarts.GoSteady, 1000, 0, bins(100, 90)),
		row(restarts.Handoff, 900, 0, bins(90, 50), 250*time.Millisecond),
		row(restarts.SignalStdlib, 800, 7, bins(80, 25), 250*time.Millisecond),
		row(restarts.GoSteady, 1200, 0, bins(120, 110)),
		row(restarts.NginxSteady, 2000, 0, bins(200, 190)),
		row(restarts.NginxReload, 1500, 0, bins(150, 100), 250*time.Millisecond),
		row(restarts.NginxSteady, 2000, 0, bins(200, 190)),
		row(restarts.ProxiedHandoff, 5000, 0, nil, 250*time.Millisecond),
		row(restarts.ProxiedNginxReload, 6000, 0, nil, 250*time.Millisecond),
		figure(restarts.GoSteady),
		figure(restarts.Handoff),
	}
	// wrk's failures: 502s and a socket error that got no response.
	rows[8].Failures = map[string]int{"status ≥ 400": 40, "read": 2}
	rows[8].OK -= 40
	rows[len(rows)-2].Restarts = nil // the steady figure restarts nothing

	r := &runner{out: t.TempDir()}
	if err := r.prepareDirs(); err != nil {
		t.Fatal(err)
	}
	md, err := r.restartReport(rows, time.Second, "bench/out/restarts.json")
	if err != nil {
		t.Fatalf("%v\n%s", err, md)
	}
	// Go's baseline: (1000+1200)/2 = 1100/s; the median of the pooled
	// bins (90, 9×100, 110, 9×120) is 105.
	for _, want := range []string{
		"| example server | none, first | 0 | 1000 | 0 | 0 | — |",
		"| example server | none, last | 0 | 1200 | 0 | 0 | — |",
		"| 900 | 0.82× | 0.48× |",  // handoff: 900/1100, 50/105
		"| 800 | 0.73× | 0.24× |",  // stdlib: 800/1100, 25/105
		"| 1500 | 0.75× | 0.50× |", // nginx reload: 1500/2000, 100/200
		"| 807 | 1 | 7 | read: reset 7 |",
		"| `-handoff` (drain) | 0 | 900 | 1 | **0** |",
		"### Behind a keep-alive proxy",
		"| example server | `-handoff` (drain) | 5000 | 1 | **0** | — |",
		"| nginx | `nginx -s reload` | 6000 | 1 | 42 | status ≥ 400 40, read 2 |",
		"-s <(echo 'wrk.method = \"POST\"",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}

	// A steady server that dropped requests is a broken setup, not a
	// measurement.
	rows[0].Requests, rows[0].Failures = 1001, map[string]int{"dial: refused": 1}
	if _, err := r.restartReport(rows, time.Second, "x"); err == nil || !strings.Contains(err.Error(), "with no restart") {
		t.Errorf("a failure with no restart: %v", err)
	}
}
