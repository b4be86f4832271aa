package restarts

import (
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/loadgen"
	"github.com/b93f8b21/reuseport/internal/netns"
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
		err = ChildMain(args)
		if err == nil || !strings.Contains(err.Error(), "host's network namespace") {
			t.Errorf("host %q: ChildMain in namespace %s returned %v, want a refusal", host, here, err)
		}
	}
}

// TestSummarize checks the per-second counts leave out the last, partial
// second and that intervals are kept only when asked for.
func TestSummarize(t *testing.T) {
	res := &loadgen.Result{Elapsed: 2500 * time.Millisecond, Failures: map[string]int{"read: reset": 1}}
	for i := range 25 {
		s := loadgen.Sample{Start: time.Duration(i) * 100 * time.Millisecond, Latency: time.Millisecond}
		if i == 12 {
			s.Failure = "read: reset"
		}
		res.Samples = append(res.Samples, s)
	}
	row := summarize(Scenario{Kind: Handoff, Duration: 2500 * time.Millisecond}, res, []time.Duration{time.Second})
	if len(row.PerSecond) != 2 || row.PerSecond[0] != 10 || row.PerSecond[1] != 9 {
		t.Errorf("per second %v, want [10 9]: whole seconds only, the failure left out", row.PerSecond)
	}
	if row.Requests != 25 || row.OK != 24 || len(row.Restarts) != 1 || row.Intervals != nil {
		t.Errorf("row %+v", row)
	}
	row = summarize(Scenario{Kind: Handoff, Duration: 2500 * time.Millisecond, Width: 500 * time.Millisecond}, res, nil)
	if len(row.Intervals) != 5 {
		t.Errorf("%d intervals of 500ms in 2.5s, want 5", len(row.Intervals))
	}
}
