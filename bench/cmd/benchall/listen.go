package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/perf/benchfmt"
)

// listenImpls are the sub-benchmarks of BenchmarkListenClose (listen_test.go
// in the bench package), baseline first.
var listenImpls = []struct{ name, what string }{
	{"net", "`net.Listen` (baseline; cannot share a port)"},
	{"reuseport", "`reuseport.Listen` (this package)"},
	{"minimal", "`net.ListenConfig` whose Control sets only SO_REUSEPORT: the floor for Go"},
	{"libp2p", "`github.com/libp2p/go-reuseport` `Listen`"},
	{"tcplisten", "`github.com/valyala/tcplisten` `Config{ReusePort: true}`"},
}

// listenTarget is the goal set for reuseport.Listen against net.Listen.
const listenTarget = 1.10

// listenSection runs the Listen benchmark in rounds, each round every
// implementation once, so that drift in a noisy machine hits all of them
// alike; the concatenated output is what benchstat reads.
func (r *runner) listenSection(ctx context.Context) (string, error) {
	rounds, benchtime := 10, "1s"
	if r.short {
		rounds, benchtime = 1, "200x"
	}
	tmp, err := os.MkdirTemp("", "benchall-listen-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	testBin := filepath.Join(tmp, "bench.test")
	if _, err := goCmd(r.benchDir, "test", "-c", "-o", testBin, "."); err != nil {
		return "", err
	}
	args := []string{"-test.run", "^$", "-test.bench", "^BenchmarkListenClose$", "-test.benchmem", "-test.benchtime", benchtime}
	var raw bytes.Buffer
	for i := range rounds {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		cmd := exec.CommandContext(ctx, testBin, args...)
		cmd.Dir = r.benchDir
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &raw, &stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("benchmark round %d: %w\n%s%s", i+1, err, raw.String(), stderr.String())
		}
	}
	rawPath := filepath.Join(r.rawDir(), "listen.txt")
	if err := os.WriteFile(rawPath, raw.Bytes(), 0o644); err != nil {
		return "", err
	}
	stats, err := readListenResults(raw.Bytes())
	if err != nil {
		return "", err
	}
	benchstat, err := goCmd(r.benchDir, "tool", "benchstat", "-col", "/impl", rawPath)
	if err != nil {
		return "", err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "What a server pays to open and close one TCP listener on 127.0.0.1:0: socket, options, bind, listen, "+
		"registration with Go's poller, close. Median of %d rounds, each running every implementation for %s "+
		"(`-benchtime %s`), interleaved so that drift on a shared machine hits all alike.\n\n", rounds, benchtime, benchtime)
	b.WriteString("| implementation | ns/op | vs net.Listen | B/op | allocs/op |\n|---|---:|---:|---:|---:|\n")
	base := stats["net"]
	for _, impl := range listenImpls {
		s, ok := stats[impl.name]
		if !ok {
			return b.String(), fmt.Errorf("no result for impl=%s in %s", impl.name, rawPath)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.2f× | %.0f | %.0f |\n", impl.what, s.ns, s.ns/base.ns, s.bytes, s.allocs)
	}
	if r.short {
		b.WriteString("\nA -short run: too few samples for a verdict on the target.\n\n")
	} else {
		writeListenVerdict(&b, stats)
	}
	fmt.Fprintf(&b, "benchstat (`go tool benchstat -col /impl %s`):\n\n```\n%s```\n\n", r.rel(rawPath), benchstat)
	fmt.Fprintf(&b, "Repeat: `%s`, or by hand, benchstat-ready:\n\n", r.command("listen"))
	b.WriteString("```\ncd bench\ngo test -run '^$' -bench ListenClose -benchmem -count 10 . | tee listen.txt\ngo tool benchstat -col /impl listen.txt\n```\n")
	return b.String(), nil
}

// writeListenVerdict sets the target against the measured ratio and splits
// the gap into what SO_REUSEPORT costs anyway and what this package adds.
func writeListenVerdict(b *strings.Builder, stats map[string]listenStat) {
	base, ours, floor := stats["net"], stats["reuseport"], stats["minimal"]
	ratio := ours.ns / base.ns
	verdict := "met"
	if ratio > listenTarget {
		verdict = "**not met**"
	}
	fmt.Fprintf(b, "\nTarget: `reuseport.Listen` within %.0f%% of `net.Listen`. Measured: %.2f×, %s.\n\n",
		(listenTarget-1)*100, ratio, verdict)
	fmt.Fprintf(b, "Of that, %.0f points are the floor that any Go implementation pays (the `minimal` row: %.2f×): "+
		"SO_REUSEPORT takes one more setsockopt, and makes listen(2) and close(2) maintain the port's reuseport "+
		"group, and system calls are most of what opening a listener costs. The other %.0f points (%.0f ns, "+
		"%+.0f allocations) are this package's own work: its checks, its Control closure, and any socket option "+
		"it sets beyond SO_REUSEPORT.\n\n",
		(floor.ns/base.ns-1)*100, floor.ns/base.ns, (ours.ns-floor.ns)/base.ns*100, ours.ns-floor.ns, ours.allocs-floor.allocs)
}

type listenStat struct{ ns, bytes, allocs float64 }

// readListenResults takes the median of each measure per implementation.
func readListenResults(raw []byte) (map[string]listenStat, error) {
	samples := map[string][][3]float64{}
	rd := benchfmt.NewReader(bytes.NewReader(raw), "listen.txt")
	for rd.Scan() {
		res, ok := rd.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		_, parts := res.Name.Parts()
		impl := ""
		for _, p := range parts {
			if v, ok := strings.CutPrefix(string(p), "/impl="); ok {
				impl = v
			}
		}
		sec, ok1 := res.Value("sec/op")
		bytes, ok2 := res.Value("B/op")
		allocs, ok3 := res.Value("allocs/op")
		if impl == "" || !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("unexpected benchmark line %q", res.Name)
		}
		samples[impl] = append(samples[impl], [3]float64{sec * float64(time.Second), bytes, allocs})
	}
	if err := rd.Err(); err != nil {
		return nil, err
	}
	stats := map[string]listenStat{}
	for impl, ss := range samples {
		var m [3]float64
		for k := range m {
			vals := make([]float64, len(ss))
			for i, s := range ss {
				vals[i] = s[k]
			}
			m[k] = median(vals)
		}
		stats[impl] = listenStat{m[0], m[1], m[2]}
	}
	return stats, nil
}

func median(vals []float64) float64 {
	s := slices.Clone(vals)
	slices.Sort(s)
	if n := len(s); n%2 == 0 && n > 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
