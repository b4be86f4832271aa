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

// listenStat is one implementation in one round: from the paired
// benchmark, its median time and ratio to net.Listen; from the separate
// one, its time, bytes and allocations per Listen+Close.
type listenStat struct{ pairedNs, ratio, ns, bytes, allocs float64 }

// listenSection runs the Listen benchmarks in rounds. The headline ratios
// come from BenchmarkListenClosePaired, which runs the implementations in
// turn within each iteration and takes medians, so that a machine busy
// with other work slows all of them alike; BenchmarkListenClose, one
// implementation at a time, gives allocations and the benchstat-ready
// samples.
func (r *runner) listenSection(ctx context.Context) (string, error) {
	rounds, pairedTime, separateTime := 10, "1s", "300ms"
	if r.short {
		rounds, pairedTime, separateTime = 1, "50x", "50x"
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
	bench := func(name, benchtime string, mem bool) ([]byte, error) {
		cmd := exec.CommandContext(ctx, testBin, "-test.run", "^$", "-test.bench", "^"+name+"$", "-test.benchtime", benchtime,
			fmt.Sprintf("-test.benchmem=%t", mem))
		cmd.Dir = r.benchDir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s: %w\n%s%s", name, err, stdout.String(), stderr.String())
		}
		return stdout.Bytes(), nil
	}
	var rawPaired, rawSeparate bytes.Buffer
	var perRound []map[string]listenStat
	for i := range rounds {
		paired, err := bench("BenchmarkListenClosePaired", pairedTime, false)
		if err != nil {
			return "", fmt.Errorf("round %d: %w", i+1, err)
		}
		separate, err := bench("BenchmarkListenClose", separateTime, true)
		if err != nil {
			return "", fmt.Errorf("round %d: %w", i+1, err)
		}
		round, err := readListenRound(paired, separate)
		if err != nil {
			return "", fmt.Errorf("round %d: %w", i+1, err)
		}
		perRound = append(perRound, round)
		rawPaired.Write(paired)
		rawSeparate.Write(separate)
	}
	pairedPath := filepath.Join(r.rawDir(), "listen-paired.txt")
	separatePath := filepath.Join(r.rawDir(), "listen.txt")
	for path, raw := range map[string][]byte{pairedPath: rawPaired.Bytes(), separatePath: rawSeparate.Bytes()} {
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			return "", err
		}
	}
	statSeparate, err := goCmd(r.benchDir, "tool", "benchstat", "-col", "/impl", separatePath)
	if err != nil {
		return "", err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "What a server pays to open and close one TCP listener on 127.0.0.1:0: socket, options, bind, listen, "+
		"registration with Go's poller, close. `BenchmarkListenClosePaired` runs the five implementations in turn "+
		"within each iteration (rotating which goes first) and takes the median time of each, so that other work "+
		"on a shared machine slows all of them alike; %d rounds of %s. `BenchmarkListenClose` runs one "+
		"implementation at a time and gives the allocations; %d rounds of %s.\n\n", rounds, pairedTime, rounds, separateTime)
	b.WriteString("| implementation | median ns per Listen+Close | vs net.Listen (median of rounds) | rounds' range | B/op | allocs/op |\n")
	b.WriteString("|---|---:|---:|---|---:|---:|\n")
	for _, impl := range listenImpls {
		ratio, lo, hi := ratioStats(perRound, impl.name)
		fmt.Fprintf(&b, "| %s | %.0f | %.3f× | %.3f–%.3f× | %.0f | %.0f |\n", impl.what,
			medianStat(perRound, impl.name, func(s listenStat) float64 { return s.pairedNs }), ratio, lo, hi,
			medianStat(perRound, impl.name, func(s listenStat) float64 { return s.bytes }),
			medianStat(perRound, impl.name, func(s listenStat) float64 { return s.allocs }))
	}
	if r.short {
		b.WriteString("\nA -short run: too few samples for a verdict on the target.\n\n")
	} else {
		writeListenVerdict(&b, perRound)
	}
	fmt.Fprintf(&b, "Every round's paired figures: `%s`.\n\n", r.rel(pairedPath))
	fmt.Fprintf(&b, "benchstat of the separate benchmarks (`go tool benchstat -col /impl %s`); their times, taken "+
		"seconds apart, are only as steady as the machine was:\n\n```\n%s```\n\n", r.rel(separatePath), statSeparate)
	fmt.Fprintf(&b, "Repeat: `%s`, or by hand:\n\n", r.command("listen"))
	b.WriteString("```\ncd bench\ngo test -run '^$' -bench 'ListenClosePaired$' -count 10 . | tee paired.txt\n" +
		"go tool benchstat paired.txt\n" +
		"go test -run '^$' -bench 'ListenClose$' -benchmem -count 10 . | tee listen.txt\n" +
		"go tool benchstat -col /impl listen.txt\n```\n")
	return b.String(), nil
}

// writeListenVerdict sets the target against the measured ratio and splits
// the gap into what SO_REUSEPORT costs anyway and what this package adds.
// It calls the target met or missed only when every round agrees.
func writeListenVerdict(b *strings.Builder, rounds []map[string]listenStat) {
	ratio, lo, hi := ratioStats(rounds, "reuseport")
	var verdict string
	switch {
	case hi <= listenTarget:
		verdict = "met"
	case lo > listenTarget:
		verdict = "**not met**"
	default:
		verdict = "**not settled by this run**: its rounds fall on both sides of the target"
	}
	fmt.Fprintf(b, "\nTarget: `reuseport.Listen` within %.0f%% of `net.Listen`. Measured: %.3f× (rounds %.3f–%.3f×): %s.\n\n",
		(listenTarget-1)*100, ratio, lo, hi, verdict)
	floor, _, _ := ratioStats(rounds, "minimal")
	var own []float64
	for _, round := range rounds {
		own = append(own, round["reuseport"].ratio/round["minimal"].ratio)
	}
	allocs := medianStat(rounds, "reuseport", func(s listenStat) float64 { return s.allocs }) -
		medianStat(rounds, "minimal", func(s listenStat) float64 { return s.allocs })
	fmt.Fprintf(b, "The `minimal` row (%.3f×) is the floor any Go implementation pays: SO_REUSEPORT takes one "+
		"more setsockopt and makes listen(2) and close(2) maintain the port's reuseport group, and system calls "+
		"are most of what opening a listener costs. Against that floor this package takes %.3f× and %+.0f "+
		"allocations: its argument checks, its Control closure, and any socket option it sets beyond "+
		"SO_REUSEPORT.\n\n", floor, median(own), allocs)
}

// ratioStats summarises impl's per-round ratio to net.Listen: the median
// and the range.
func ratioStats(rounds []map[string]listenStat, impl string) (med, lo, hi float64) {
	var r []float64
	for _, round := range rounds {
		r = append(r, round[impl].ratio)
	}
	return median(r), slices.Min(r), slices.Max(r)
}

func medianStat(rounds []map[string]listenStat, impl string, f func(listenStat) float64) float64 {
	var v []float64
	for _, round := range rounds {
		v = append(v, f(round[impl]))
	}
	return median(v)
}

// readListenRound reads one round: the paired benchmark's per-implementation
// metrics ("reuseport-ns/op", "reuseport/net") and the separate
// benchmarks' results (".../impl=reuseport").
func readListenRound(paired, separate []byte) (map[string]listenStat, error) {
	round := map[string]listenStat{}
	pairedRes, err := readResults(paired)
	if err != nil {
		return nil, err
	}
	separateRes, err := readResults(separate)
	if err != nil {
		return nil, err
	}
	if len(pairedRes) != 1 {
		return nil, fmt.Errorf("want one paired result, got %d", len(pairedRes))
	}
	for _, impl := range listenImpls {
		var st listenStat
		var ok bool
		if st.pairedNs, ok = rawValue(pairedRes[0], impl.name+"-ns/op"); !ok {
			return nil, fmt.Errorf("the paired benchmark reports no %s-ns/op", impl.name)
		}
		st.ratio = 1
		if impl.name != "net" {
			if st.ratio, ok = rawValue(pairedRes[0], impl.name+"/net"); !ok {
				return nil, fmt.Errorf("the paired benchmark reports no %s/net", impl.name)
			}
		}
		i := slices.IndexFunc(separateRes, func(r *benchfmt.Result) bool {
			_, parts := r.Name.Parts()
			return slices.ContainsFunc(parts, func(p []byte) bool { return string(p) == "/impl="+impl.name })
		})
		if i < 0 {
			return nil, fmt.Errorf("no result for impl=%s", impl.name)
		}
		sec, ok1 := separateRes[i].Value("sec/op")
		bytes, ok2 := separateRes[i].Value("B/op")
		allocs, ok3 := separateRes[i].Value("allocs/op")
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("impl=%s lacks sec/op, B/op or allocs/op", impl.name)
		}
		st.ns, st.bytes, st.allocs = sec*float64(time.Second), bytes, allocs
		round[impl.name] = st
	}
	return round, nil
}

// rawValue is a measurement in the unit the benchmark printed, before
// benchfmt rescaled it ("net-ns/op" becomes "net-sec/op").
func rawValue(r *benchfmt.Result, unit string) (float64, bool) {
	for _, v := range r.Values {
		switch {
		case v.OrigUnit == unit:
			return v.OrigValue, true
		case v.OrigUnit == "" && v.Unit == unit:
			return v.Value, true
		}
	}
	return 0, false
}

func readResults(raw []byte) ([]*benchfmt.Result, error) {
	var out []*benchfmt.Result
	rd := benchfmt.NewReader(bytes.NewReader(raw), "")
	for rd.Scan() {
		if res, ok := rd.Result().(*benchfmt.Result); ok {
			out = append(out, res.Clone())
		}
	}
	return out, rd.Err()
}

func median(vals []float64) float64 { return quantile(vals, 0.5) }

// quantile interpolates linearly between the closest ranks.
func quantile(vals []float64, q float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}
