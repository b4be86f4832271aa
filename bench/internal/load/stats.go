package load

import (
	"slices"
	"time"
)

// Totals summarises a whole run.
type Totals struct {
	Requests int             // sent, whatever their outcome
	OK       int             // answered with 200
	Failures map[Failure]int // failed requests by kind
	P50, P99 time.Duration   // latency of the successful requests
	Max      time.Duration   //
}

// Interval summarises the requests that started in [At, At+width).
type Interval struct {
	At       time.Duration // from the start of the run
	OK       int
	Failed   int
	P50, P99 time.Duration // of the successful requests; zero if none
	Max      time.Duration
}

// Totals summarises the run.
func (r *Result) Totals() Totals {
	t := Totals{Requests: len(r.samples), Failures: map[Failure]int{}}
	lats := make([]time.Duration, 0, len(r.samples))
	for _, s := range r.samples {
		if s.fail == OK {
			lats = append(lats, s.latency)
		} else {
			t.Failures[s.fail]++
		}
	}
	t.OK = len(lats)
	t.P50, t.P99, t.Max = percentiles(lats)
	return t
}

// Intervals cuts the run into intervals of the given width.
func (r *Result) Intervals(width time.Duration) []Interval {
	if width <= 0 || len(r.samples) == 0 {
		return nil
	}
	// Up to the last request's start: requests still in flight when the
	// run ended would otherwise leave an empty interval at the end.
	n := int(r.samples[len(r.samples)-1].at/width) + 1
	out := make([]Interval, 0, n)
	i := 0
	for k := range n {
		iv := Interval{At: time.Duration(k) * width}
		end := iv.At + width
		var lats []time.Duration
		for ; i < len(r.samples) && r.samples[i].at < end; i++ {
			if s := r.samples[i]; s.fail == OK {
				lats = append(lats, s.latency)
			} else {
				iv.Failed++
			}
		}
		iv.OK = len(lats)
		iv.P50, iv.P99, iv.Max = percentiles(lats)
		out = append(out, iv)
	}
	return out
}

// percentiles sorts lats and picks the 50th and 99th percentiles (nearest
// rank) and the maximum.
func percentiles(lats []time.Duration) (p50, p99, slowest time.Duration) {
	if len(lats) == 0 {
		return 0, 0, 0
	}
	slices.Sort(lats)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(lats))+0.999999) - 1
		return lats[min(max(i, 0), len(lats)-1)]
	}
	return rank(0.50), rank(0.99), lats[len(lats)-1]
}
