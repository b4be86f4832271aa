package main

import (
	"strings"
	"testing"

	"github.com/b93f8b21/reuseport/handoff"
)

// TestExposition checks the hand-written Prometheus text: a HELP and a
// TYPE line before each sample, and every count of handoff.Stats once.
func TestExposition(t *testing.T) {
	got := exposition(handoff.Stats{TookOver: 1, HandedOver: 2, FailedTakeovers: 3, Upgrades: 4, FailedUpgrades: 5, Drained: 6, Stored: 7}, 42)
	want := map[string]string{
		"handoff_took_over_total":           "1",
		"handoff_handed_over_total":         "2",
		"handoff_failed_takeovers_total":    "3",
		"handoff_upgrades_total":            "4",
		"handoff_failed_upgrades_total":     "5",
		"handoff_drained_connections_total": "6",
		"handoff_stored_sockets_total":      "7",
		"webserver_pid":                     "42",
	}
	samples := parseMetrics(got)
	for name, v := range want {
		if samples[name] != v {
			t.Errorf("%s = %q, want %q", name, samples[name], v)
		}
	}
	if len(samples) != len(want) {
		t.Errorf("%d samples, want %d:\n%s", len(samples), len(want), got)
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	for i := 0; i+2 < len(lines); i += 3 {
		name := strings.Fields(lines[i+2])[0]
		if !strings.HasPrefix(lines[i], "# HELP "+name+" ") || !strings.HasPrefix(lines[i+1], "# TYPE "+name+" ") {
			t.Errorf("sample %s not preceded by its HELP and TYPE lines:\n%s", name, got)
		}
	}
}

// parseMetrics returns the samples of a Prometheus text exposition by
// name (no labels in this one).
func parseMetrics(s string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) == 2 && !strings.HasPrefix(line, "#") {
			m[f[0]] = f[1]
		}
	}
	return m
}
