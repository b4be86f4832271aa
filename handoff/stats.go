package handoff

import "sync/atomic"

// Stats counts what the handoffs of this process have done since it
// started. The counts only grow, so each can be exported as a counter;
// with Prometheus's client, for example:
//
//	prometheus.MustRegister(prometheus.NewCounterFunc(
//		prometheus.CounterOpts{Name: "handoff_handed_over_total", Help: "Successors that took over."},
//		func() float64 { return float64(handoff.ReadStats().HandedOver) }))
type Stats struct {
	// TookOver counts the predecessors this process took the sockets of
	// and told to stop: 1 at most for a process started once.
	TookOver uint64

	// HandedOver counts the successors that took this process's sockets
	// and began serving: 1 at most, as the process then stops.
	HandedOver uint64

	// FailedTakeovers counts the handoffs that began and did not
	// complete, seen from either side: a successor that failed to take
	// the sockets or to become ready, or a Ready of this process that
	// failed. Each one leaves the predecessor serving.
	FailedTakeovers uint64

	// Upgrades counts the upgrades on RunConfig.UpgradeSignal that a new
	// process took over; FailedUpgrades those that failed, leaving this
	// process serving.
	Upgrades, FailedUpgrades uint64

	// Drained counts the connections [Run] and [RunAll] had open when
	// they stopped accepting, and drained.
	Drained uint64

	// Passed counts the idle connections of sequential services
	// (Service.Sequential) handed to a successor instead of closed.
	Passed uint64

	// Stored counts the sockets handed to systemd's file descriptor
	// store (Config.FDStore), each time they were stored.
	Stored uint64
}

// stats is the process's Stats.
var stats struct {
	tookOver, handedOver, failedTakeovers atomic.Uint64
	upgrades, failedUpgrades              atomic.Uint64
	drained, stored, passed               atomic.Uint64
}

// ReadStats returns the counts of this process, each read atomically.
func ReadStats() Stats {
	return Stats{
		TookOver:        stats.tookOver.Load(),
		HandedOver:      stats.handedOver.Load(),
		FailedTakeovers: stats.failedTakeovers.Load(),
		Upgrades:        stats.upgrades.Load(),
		FailedUpgrades:  stats.failedUpgrades.Load(),
		Drained:         stats.drained.Load(),
		Passed:          stats.passed.Load(),
		Stored:          stats.stored.Load(),
	}
}
