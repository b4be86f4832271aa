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

// listenStat is one implementation in one round.
type listenStat struct{ ns, bytes, allocs float64 }

// listenSection runs the Listen benchmark in rounds, each round every
// implementation once, back to back. Ratios are taken within a round and
// then summarised, so that a noisy neighbour who slows one round down
// slows the baseline with it; the concatenated output is what benchstat
// reads.
func (r *runner) listenSection(ctx context.Context) (string, error) {
	rounds, benchtime := 20, "500ms"
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
	var perRound []map[string]listenStat
	for i := range rounds {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		cmd := exec.CommandContext(ctx, testBin, args...)
		cmd.Dir = r.benchDir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("benchmark round %d: %w\n%s%s", i+1, err, stdout.String(), stderr.String())
		}
		round, err := readListenRound(stdout.Bytes())
		if err != nil {
			return "", fmt.Errorf("benchmark round %d: %w", i+1, err)
		}
		for _, impl := range listenImpls {
			if _, ok := round[impl.name]; !ok {
				return "", fmt.Errorf("benchmark round %d: no result for impl=%s", i+1, impl.name)
			}
		}
		perRound = append(perRound, round)
		raw.Write(stdout.Bytes())
	}
	rawPath := filepath.Join(r.rawDir(), "listen.txt")
	if err := os.WriteFile(rawPath, raw.Bytes(), 0o644); err != nil {
		return "", err
	}
	benchstat, err := goCmd(r.benchDir, "tool", "benchstat", "-col", "/impl", rawPath)
	if err != nil {
		return "", err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "What a server pays to open and close one TCP listener on 127.0.0.1:0: socket, options, bind, listen, "+
		"registration with Go's poller, close. %d rounds, each running every implementation back to back for %s "+
		"(`-benchtime %s`). The ratio to `net.Listen` is taken within each round, then the median and the middle "+
		"half (quartiles) of those per-round ratios are shown, so that a busy moment of a shared machine slows the "+
		"baseline as much as what is compared with it.\n\n", rounds, benchtime, benchtime)
	b.WriteString("| implementation | ns/op (median) | vs net.Listen: median | middle half of rounds | B/op | allocs/op |\n")
	b.WriteString("|---|---:|---:|---|---:|---:|\n")
	for _, impl := range listenImpls {
		med, lo, hi := ratioStats(perRound, impl.name)
		fmt.Fprintf(&b, "| %s | %.0f | %.2f× | %.2f–%.2f× | %.0f | %.0f |\n", impl.what,
			medianStat(perRound, impl.name, func(s listenStat) float64 { return s.ns }), med, lo, hi,
			medianStat(perRound, impl.name, func(s listenStat) float64 { return s.bytes }),
			medianStat(perRound, impl.name, func(s listenStat) float64 { return s.allocs }))
	}
	if r.short {
		b.WriteString("\nA -short run: too few samples for a verdict on the target.\n\n")
	} else {
		writeListenVerdict(&b, perRound)
	}
	fmt.Fprintf(&b, "benchstat (`go tool benchstat -col /impl %s`), which compares the pooled samples and so "+
		"feels every busy moment twice:\n\n```\n%s```\n\n", r.rel(rawPath), benchstat)
	fmt.Fprintf(&b, "Repeat: `%s`, or by hand, benchstat-ready:\n\n", r.command("listen"))
	b.WriteString("```\ncd bench\ngo test -run '^$' -bench ListenClose -benchmem -count 10 . | tee listen.txt\ngo tool benchstat -col /impl listen.txt\n```\n")
	return b.String(), nil
}

// writeListenVerdict sets the target against the measured ratio and splits
// the gap into what SO_REUSEPORT costs anyway and what this package adds.
// It calls the target met or missed only when the middle half of the
// rounds agrees.
func writeListenVerdict(b *strings.Builder, rounds []map[string]listenStat) {
	ratio, lo, hi := ratioStats(rounds, "reuseport")
	var verdict string
	switch {
	case hi <= listenTarget:
		verdict = "met"
	case lo > listenTarget:
		verdict = "**not met**"
	default:
		verdict = "**not settled by this run**: the middle half of the rounds straddles the target"
	}
	fmt.Fprintf(b, "\nTarget: `reuseport.Listen` within %.0f%% of `net.Listen`. Measured: %.2f× (middle half "+
		"%.2f–%.2f×): %s.\n\n", (listenTarget-1)*100, ratio, lo, hi, verdict)
	floor, _, _ := ratioStats(rounds, "minimal")
	own := paired(rounds, "reuseport", "minimal")
	allocs := medianStat(rounds, "reuseport", func(s listenStat) float64 { return s.allocs }) -
		medianStat(rounds, "minimal", func(s listenStat) float64 { return s.allocs })
	fmt.Fprintf(b, "The `minimal` row (%.2f×) is the floor any Go implementation pays: SO_REUSEPORT takes one "+
		"more setsockopt and makes listen(2) and close(2) maintain the port's reuseport group, and system calls "+
		"are most of what opening a listener costs. Against that floor, this package takes %.2f× (median of "+
		"per-round ratios) and %+.0f allocations: its argument checks, its Control closure, and any socket "+
		"option it sets beyond SO_REUSEPORT.\n\n", floor, own, allocs)
}

// ratioStats summarises impl's per-round ratio to net: median and quartiles.
func ratioStats(rounds []map[string]listenStat, impl string) (med, lo, hi float64) {
	r := ratios(rounds, impl, "net")
	return median(r), quantile(r, 0.25), quantile(r, 0.75)
}

func paired(rounds []map[string]listenStat, impl, base string) float64 {
	return median(ratios(rounds, impl, base))
}

func ratios(rounds []map[string]listenStat, impl, base string) []float64 {
	var r []float64
	for _, round := range rounds {
		r = append(r, round[impl].ns/round[base].ns)
	}
	return r
}

func medianStat(rounds []map[string]listenStat, impl string, f func(listenStat) float64) float64 {
	var v []float64
	for _, round := range rounds {
		v = append(v, f(round[impl]))
	}
	return median(v)
}

// readListenRound reads one round's output: a result per implementation.
func readListenRound(raw []byte) (map[string]listenStat, error) {
	round := map[string]listenStat{}
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
		round[impl] = listenStat{sec * float64(time.Second), bytes, allocs}
	}
	return round, rd.Err()
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
