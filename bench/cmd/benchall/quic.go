package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The QUIC section runs in the integrations module, which has quic-go;
// the bench module needs none of it.
const (
	quicScenarioPkg = "./cmd/quicserver"
	quicBenchPkg    = "./quicsteer"
	quicScenarios   = "^(TestSteer|TestNoSteer)(Join|Leave|Restart)(Breaks)?$"
	quicShortRun    = "^TestSteerJoin$"
)

// quicFigures is what a scenario test of integrations/cmd/quicserver logs
// on its "figures:" line.
type quicFigures struct {
	Steer          bool   `json:"steer"`
	Change         string `json:"change"`
	Requests       int    `json:"requests"`
	Conns          int    `json:"conns"`
	OthersAtChange int    `json:"others_at_change"`
	OthersBroken   int    `json:"others_broken"`
	ChangedConns   int    `json:"changed_conns"`
	ChangedClean   int    `json:"changed_clean"`
	ChangedBroken  int    `json:"changed_broken"`
	NewConns       int    `json:"new_conns"`
	NewFailed      int    `json:"new_failed"`
	Retried        int    `json:"retried"`
}

var (
	figuresLine = regexp.MustCompile(`figures: (\{[^\n]*\})`)
	socketsLine = regexp.MustCompile(`(?m)^BenchmarkSockets/sockets=(\d+),steer=(true|false)\S*\s+\d+\s+\S+ ns/op\s+(\S+) req/s`)
)

// parseQUICFigures returns the figures of every scenario in go test -v
// output.
func parseQUICFigures(out []byte) ([]quicFigures, error) {
	var fs []quicFigures
	for _, m := range figuresLine.FindAllSubmatch(out, -1) {
		var f quicFigures
		if err := json.Unmarshal(m[1], &f); err != nil {
			return nil, fmt.Errorf("figures %s: %w", m[1], err)
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// quicSocketsRow is one line of BenchmarkSockets.
type quicSocketsRow struct {
	sockets int
	steer   bool
	perSec  float64
}

func parseQUICSockets(out []byte) []quicSocketsRow {
	var rows []quicSocketsRow
	for _, m := range socketsLine.FindAllSubmatch(out, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		v, _ := strconv.ParseFloat(string(m[3]), 64)
		rows = append(rows, quicSocketsRow{sockets: n, steer: string(m[2]) == "true", perSec: v})
	}
	return rows
}

// quicSection runs the QUIC steering scenarios (issue 12): three HTTP/3
// copies on one port under load, one joining, leaving or restarting, with
// and without steering by connection ID; then the multi-socket benchmark.
func (r *runner) quicSection(ctx context.Context) (string, error) {
	dir := filepath.Join(r.benchDir, "..", "integrations")
	run, benchtime := quicScenarios, "3s"
	if r.short {
		run, benchtime = quicShortRun, "50x"
	}
	goTest := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "go", append([]string{"test", "-count=1", "-p=1"}, args...)...)
		cmd.Dir = dir
		// Fail, rather than skip, where no network namespace can be made.
		cmd.Env = append(os.Environ(), "REUSEPORT_REQUIRE_NETNS=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("go test %s: %w\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.Bytes(), err
	}
	scenOut, err := goTest("-v", "-run", run, quicScenarioPkg)
	if err != nil {
		return "", err
	}
	benchOut, err := goTest("-run", "^$", "-bench", "^BenchmarkSockets$", "-benchtime", benchtime, quicBenchPkg)
	if err != nil {
		return "", err
	}
	rawPath := filepath.Join(r.rawDir(), "quic.txt")
	if err := os.WriteFile(rawPath, append(scenOut, benchOut...), 0o644); err != nil {
		return "", err
	}
	figs, err := parseQUICFigures(scenOut)
	if err != nil {
		return "", err
	}
	socks := parseQUICSockets(benchOut)
	if len(figs) == 0 || len(socks) == 0 {
		return "", fmt.Errorf("no figures in the output of the QUIC tests (%s)", r.rel(rawPath))
	}
	return r.quicReport(figs, socks, rawPath), nil
}

func (r *runner) quicReport(figs []quicFigures, socks []quicSocketsRow, rawPath string) string {
	var b strings.Builder
	b.WriteString("HTTP/3 with quic-go: three copies of `integrations/cmd/quicserver` on one UDP port, each a process of an unprivileged user, in a network namespace of their own; 180 long-lived connections (60 per copy) each sending a GET every 100ms, and 4 clients opening a new connection per GET. Then one change: a fourth copy joins, a copy leaves on SIGTERM, or a copy is replaced through `-handoff` (its successor binds a socket of its own). With steering (the `steer` package: a classic BPF program on the group that sends each packet to the socket named in its connection ID), and without (`-steer=false`, the kernel's hash).\n\n")
	b.WriteString("| change | steering | other copies' connections broken | changed copy's connections: closed after GOAWAY / broken | new connections failed | requests answered | requests resent after GOAWAY |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, f := range figs {
		steer := "steered"
		if !f.Steer {
			steer = "kernel hash"
		}
		changed := "—"
		if f.ChangedConns > 0 {
			changed = fmt.Sprintf("%d of %d / %d", f.ChangedClean, f.ChangedConns, f.ChangedBroken)
		}
		broken := fmt.Sprintf("%d of %d", f.OthersBroken, f.OthersAtChange)
		failed := fmt.Sprintf("%d of %d", f.NewFailed, f.NewConns)
		if f.Steer {
			broken, failed = "**"+broken+"**", "**"+failed+"**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d | %d |\n", f.Change, steer, broken, changed, failed, f.Requests, f.Retried)
	}
	b.WriteString("\nA connection is broken when a request on it fails or gets no answer within 5s (without a shared stateless reset key, a socket that does not know a connection stays silent). *Requests resent after GOAWAY* were refused unprocessed (H3_REQUEST_REJECTED) or held back by the client as the GOAWAY arrived; HTTP/3 says to send them again, and the client did, on a new connection.\n\n")
	b.WriteString("Several sockets in one process (`reuseport.ListenPacketGroup`), each with its own quic-go transport, 64 connections sending one request per stream from the same process (`BenchmarkSockets`):\n\n")
	b.WriteString("| sockets | steering | requests/s |\n| ---: | --- | ---: |\n")
	for _, s := range socks {
		steer := "steered"
		if !s.steer {
			steer = "kernel hash"
		}
		fmt.Fprintf(&b, "| %d | %s | %.0f |\n", s.sockets, steer, s.perSec)
	}
	fmt.Fprintf(&b, "\nThe clients share the machine's cores with the servers, so more sockets than cores cannot help here; without a change to the group the kernel's hash keeps every connection on its socket too. Raw output: `%s`.\n\n", r.rel(rawPath))
	fmt.Fprintf(&b, "Repeat: `%s` (as root, so that the servers run as nobody), or from `integrations/`: `go test -count=1 -p=1 -v -run '%s' %s` and `go test -run '^$' -bench BenchmarkSockets -benchtime 3s %s`.\n",
		r.command("quic"), quicScenarios, quicScenarioPkg, quicBenchPkg)
	return b.String()
}
