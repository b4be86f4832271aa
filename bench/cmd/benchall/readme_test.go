package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/restarts"
)

// TestReadmeFigures renders README's restart figures from made-up rows and
// puts them in the repository's README.md: the rows must read as README's
// tables do, and a second splice must change nothing.
func TestReadmeFigures(t *testing.T) {
	row := func(k restarts.Kind, migrate bool, requests int, failures map[string]int) restarts.Row {
		ok := requests
		for _, n := range failures {
			ok -= n
		}
		return restarts.Row{
			Scenario: restarts.Scenario{Kind: k, Migrate: migrate, Interval: 250 * time.Millisecond, Duration: 90 * time.Second, README: true},
			Requests: requests, OK: ok, Failures: failures, Restarts: make([]time.Duration, 359),
			P999: 33 * time.Millisecond, Max: 1035400 * time.Microsecond,
		}
	}
	long := []restarts.Row{
		row(restarts.Handoff, false, 831309, nil),
		row(restarts.SignalDrain, true, 888214, map[string]int{"dial: reset": 2}),
		row(restarts.SignalStdlib, false, 884339, map[string]int{"read: eof before response": 2000, "read: reset": 2581}),
	}
	proxied := []restarts.Row{row(restarts.ProxiedNginxReload, false, 130522, map[string]int{"status ≥ 400": 812})}
	proxied[0].Duration, proxied[0].README = 10*time.Second, false
	md := readmeFigures(long, proxied, time.Second)
	for _, want := range []string{
		"every 250 ms, for 90 s per row after 1 s of warm-up (",
		"| `-handoff` | drain | 0 | 831,309 | 359 | **0** | 33 ms | 1035 ms |\n",
		"| SIGTERM | drain | 1 | 888,214 | 359 | 2 (dial resets) | 33 ms | 1035 ms |\n",
		"| SIGTERM | `http.Server.Shutdown` | 0 | 884,339 | 359 | 4,581 (resets, EOF) | 33 ms | 1035 ms |\n",
		"one of two upstream workers replaced every 250 ms, 10 s per row:",
		"| nginx as the upstream, `nginx -s reload` | 130,522 | 359 | 812 (502s) |\n",
		readmeCommand,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("README figures lack %q:\n%s", want, md)
		}
	}

	doc, err := os.ReadFile("../../../docs/restarts.md")
	if err != nil {
		t.Fatal(err)
	}
	once, err := spliceReadme(string(doc), md)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(once, readmeBegin+"\n"+strings.TrimSpace(md)+"\n"+readmeEnd+"\n") {
		t.Error("the figures are not between README's markers")
	}
	twice, err := spliceReadme(once, md)
	if err != nil || twice != once {
		t.Errorf("a second splice changed README.md (err %v)", err)
	}
	// Only the marked region changes.
	i, j := strings.Index(string(doc), readmeBegin), strings.Index(string(doc), readmeEnd)
	if !strings.HasPrefix(once, string(doc)[:i]) || !strings.HasSuffix(once, string(doc)[j:]) {
		t.Error("splicing changed README.md outside its markers")
	}
	if _, err := spliceReadme("# no markers\n", md); err == nil {
		t.Error("spliceReadme accepted a README without markers")
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 831309: "831,309", 1234567: "1,234,567", -4581: "-4,581"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
