package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/b93f8b21/reuseport/handoff"
)

// metricsHandler serves handoff.ReadStats at /metrics in the Prometheus
// text exposition format (version 0.0.4), written by hand: the format is
// a few lines, not worth a dependency.
func metricsHandler(pid int) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write([]byte(exposition(handoff.ReadStats(), pid)))
	})
	return mux
}

// exposition writes s, and the pid of the process, as Prometheus metrics.
func exposition(s handoff.Stats, pid int) string {
	var b strings.Builder
	metric := func(name, typ, help string, v uint64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", name, help, name, typ, name, v)
	}
	metric("handoff_took_over_total", "counter", "Handoffs in which this process took the sockets over from a predecessor.", s.TookOver)
	metric("handoff_handed_over_total", "counter", "Handoffs in which this process handed its sockets to a successor.", s.HandedOver)
	metric("handoff_failed_takeovers_total", "counter", "Handoffs that began and did not complete, seen from either side.", s.FailedTakeovers)
	metric("handoff_upgrades_total", "counter", "Upgrades in place on the upgrade signal that succeeded.", s.Upgrades)
	metric("handoff_failed_upgrades_total", "counter", "Upgrades in place that failed; the process went on serving.", s.FailedUpgrades)
	metric("handoff_drained_connections_total", "counter", "Connections open when the process stopped accepting, drained.", s.Drained)
	metric("handoff_stored_sockets_total", "counter", "Sockets stored in the systemd file descriptor store.", s.Stored)
	metric("webserver_pid", "gauge", "Process id of the generation that answered.", uint64(pid))
	return b.String()
}
