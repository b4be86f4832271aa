package restarts

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
	"github.com/b93f8b21/reuseport/internal/test/netns"
	"github.com/b93f8b21/reuseport/internal/test/wrk"
)

// TestChildRefusesHostNetns checks the guard that keeps the benchmark from
// setting tcp_migrate_req on the host: run where the plan says the host
// is, or with no host named, the helper must refuse before it runs
// anything.
func TestChildRefusesHostNetns(t *testing.T) {
	here, err := netns.ID()
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{here, ""} {
		plan := Plan{Server: "/nonexistent", HostNetns: host, Workers: 1, Clients: 1,
			Scenarios: []Scenario{{Kind: GoSteady, Migrate: true, Interval: time.Second, Duration: time.Second}}}
		args, err := ChildArgs(plan)
		if err != nil {
			t.Fatal(err)
		}
		if err := ChildMain(args); !errors.Is(err, ErrHostNetns) {
			t.Errorf("host %q: ChildMain in namespace %s returned %v, want %v", host, here, err, ErrHostNetns)
		}
	}
}

// TestSummarize checks the per-bin counts leave out the last, partial bin
// and the failures, and that intervals are kept only when asked for.
func TestSummarize(t *testing.T) {
	res := &loadgen.Result{Elapsed: 2550 * time.Millisecond, Failures: map[string]int{"read: reset": 1}}
	// One request every 50ms for 2.55s: two in each 100ms bin, and one in
	// a last, partial bin.
	for i := range 51 {
		s := loadgen.Sample{Start: time.Duration(i) * 50 * time.Millisecond, Latency: time.Millisecond}
		if i == 12 {
			s.Failure = "read: reset"
		}
		res.Samples = append(res.Samples, s)
	}
	sc := Scenario{Kind: Handoff, Duration: 2550 * time.Millisecond}
	row := summarize(sc, res, []time.Duration{time.Second})
	want := slices.Repeat([]int{2}, 25)
	want[6] = 1 // the failure at 600ms
	if !slices.Equal(row.PerBin, want) {
		t.Errorf("per bin %v, want %v", row.PerBin, want)
	}
	if row.Requests != 51 || row.OK != 50 || len(row.Restarts) != 1 || row.Intervals != nil {
		t.Errorf("row %+v", row)
	}
	sc.Width = 500 * time.Millisecond
	if row := summarize(sc, res, nil); len(row.Intervals) != 6 {
		t.Errorf("%d intervals of 500ms in 2.55s, want 6", len(row.Intervals))
	}
}

// TestSummarizeWrk checks that a proxied row counts wrk's 502s as
// responses that failed and its socket errors as failures besides.
func TestSummarizeWrk(t *testing.T) {
	res := wrk.Result{Requests: 1000, Duration: time.Second, P50: time.Millisecond, Max: time.Second,
		Errors: wrk.Errors{Status: 7, Read: 2}}
	row := summarizeWrk(Scenario{Kind: ProxiedHandoff, Duration: time.Second}, res, []time.Duration{time.Second})
	want := map[string]int{"status ≥ 400": 7, "read": 2}
	if row.Requests != 1000 || row.OK != 993 || !maps.Equal(row.Failures, want) || row.P50 != time.Millisecond || len(row.Restarts) != 1 || row.PerBin != nil {
		t.Errorf("row %+v", row)
	}
}
