package loadgen

import (
	"math"
	"slices"
	"time"
)

// Interval sums up the requests that started in [At, At+width).
type Interval struct {
	At     time.Duration // since the run began
	OK     int
	Failed int
	// Latency of the answered requests: a failure's latency says how fast
	// it failed, which a plot of service times should not mix in. Zero
	// when none was answered.
	P50, P99, Max time.Duration
}

// Intervals cuts the run into intervals of the given width, up to the one
// in which the last request started.
func (r *Result) Intervals(width time.Duration) []Interval {
	if width <= 0 || len(r.Samples) == 0 {
		return nil
	}
	var last time.Duration
	for _, s := range r.Samples {
		last = max(last, s.Start)
	}
	n := int(last/width) + 1
	out := make([]Interval, n)
	lats := make([][]time.Duration, n)
	for _, s := range r.Samples {
		k := int(s.Start / width)
		if s.Failure != "" {
			out[k].Failed++
			continue
		}
		lats[k] = append(lats[k], s.Latency)
	}
	for k := range out {
		out[k].At = time.Duration(k) * width
		out[k].OK = len(lats[k])
		if len(lats[k]) == 0 {
			continue
		}
		slices.Sort(lats[k])
		out[k].P50, out[k].P99, out[k].Max = rank(lats[k], 0.50), rank(lats[k], 0.99), lats[k][len(lats[k])-1]
	}
	return out
}

// rank is the nearest-rank percentile p (0..1) of sorted.
func rank(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
