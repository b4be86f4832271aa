// Command benchall runs every benchmark of package reuseport and writes
// BENCHMARKS.md and its figures from one run, so that the ratios it reports
// were measured side by side on one machine. It is also what makes the
// restart figures of docs/restarts.md: the restarts section writes them
// between its markers when -out holds docs/restarts.md (bench/out/README-restarts.md
// always), so that every restart figure of both files comes from one run.
//
// Regenerate the committed report, as root (about 20 minutes on 2 cores):
//
//	cd bench && go run ./cmd/benchall -out ..
//
// Regenerate some sections of it alone, keeping the others, such as the
// restarts, with README's restart figures (about 13 minutes):
//
//	cd bench && go run ./cmd/benchall -sections restarts -update -out ..
//
// Check that nothing has rotted (about two minutes; CI runs this):
//
//	cd bench && go run ./cmd/benchall -short
//
// The -short run measures too little to mean anything, and so asserts no
// speed; it fails if something broke: a listener that got no connection, a
// server that did not start or did not leave when replaced, a load client
// that saw errors where nothing was restarted.
//
// It needs wrk and nginx (on Debian: apt-get install -y nginx-light wrk),
// and sends load to 127.0.0.1 only. The restarts section needs root: it
// runs in a network namespace of its own, so that it can set
// net.ipv4.tcp_migrate_req there and never on the host.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/child"
	"github.com/b93f8b21/reuseport/bench/internal/httpserver"
	"github.com/b93f8b21/reuseport/bench/internal/restarts"
	"github.com/b93f8b21/reuseport/bench/internal/spread"
	"github.com/b93f8b21/reuseport/internal/test/nginx"
	"github.com/b93f8b21/reuseport/internal/test/wrk"
)

// A section measures one thing and writes its part of BENCHMARKS.md. It
// returns what it could write even when it fails, so a failed run still
// shows how far it got.
type section struct {
	name  string // for -sections
	title string
	run   func(r *runner, ctx context.Context) (markdown string, err error)
	needs []func() error // tools it cannot run without
}

// sections run in this order. A new one is a function with the signature
// of run, in a file of its own, added here.
var sections = []section{
	{"listen", "Cost of opening a listener", (*runner).listenSection, nil},
	{"spread", "How connections are spread", (*runner).spreadSection, nil},
	{"http", "HTTP throughput against nginx", (*runner).httpSection, []func() error{wrk.Available, nginx.Available}},
	{"restarts", "Restarts under load", (*runner).restartSection, []func() error{needRoot, nginx.Available, wrk.Available}},
	{"quic", "QUIC: copies joining, leaving and restarting", (*runner).quicSection, nil},
}

// childRoles are the helper processes this binary can be re-executed as.
var childRoles = map[string]func(args []string) error{
	spread.ChildRole:     spread.ChildMain,
	httpserver.ChildRole: httpserver.ChildMain,
	restarts.ChildRole:   restarts.ChildMain,
}

func main() {
	if role := child.Role(); role != "" {
		main, ok := childRoles[role]
		if !ok {
			log.Fatalf("benchall: unknown child role %q", role)
		}
		if err := main(os.Args[1:]); err != nil {
			log.Fatalf("benchall child %s: %v", role, err)
		}
		return
	}

	var r runner
	var names string
	flag.BoolVar(&r.short, "short", false, "a quick run that checks everything works, for CI; its figures mean nothing")
	flag.StringVar(&r.out, "out", "", "write BENCHMARKS.md, docs/img/ and bench/out/ under this directory (the repository root is ..); default a new temporary directory")
	flag.StringVar(&names, "sections", "", "comma-separated sections to run (default all): "+sectionNames())
	flag.BoolVar(&r.update, "update", false, "with -sections, replace only those sections of the BENCHMARKS.md already under -out, and keep the rest of it")
	flag.IntVar(&r.n, "n", max(runtime.NumCPU(), 2), "server processes (and nginx workers) in the throughput runs")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("benchall: unexpected arguments %q", flag.Args())
	}
	if r.n < 1 || r.n > 64 {
		log.Fatalf("benchall: -n %d: want 1 to 64 processes", r.n)
	}
	chosen, err := pickSections(names)
	if err != nil {
		log.Fatal(err)
	}
	if r.update && (names == "" || r.out == "" || r.short) {
		log.Fatal("benchall: -update replaces the -sections named in the BENCHMARKS.md under -out, and needs both; a -short run updates nothing")
	}
	os.Exit(r.main(chosen))
}

func sectionNames() string {
	var names []string
	for _, s := range sections {
		names = append(names, s.name)
	}
	return strings.Join(names, ",")
}

func pickSections(names string) ([]section, error) {
	if names == "" {
		return sections, nil
	}
	var chosen []section
	for _, name := range strings.Split(names, ",") {
		i := slices.IndexFunc(sections, func(s section) bool { return s.name == name })
		if i < 0 {
			return nil, fmt.Errorf("benchall: no section %q; have %s", name, sectionNames())
		}
		chosen = append(chosen, sections[i])
	}
	return chosen, nil
}

// runner holds what every section needs.
type runner struct {
	short       bool
	update      bool    // replace the chosen sections in an existing report
	out         string  // root of the output tree
	n           int     // processes in the throughput runs
	benchDir    string  // the bench module, where go test and go tool run
	partial     bool    // not every section runs
	commit      string  // the code measured, read before the run writes anything
	loadAtStart float64 // the 1-minute load average when the run began
	// deadline bounds the whole run; children are told to exit by then.
	deadline time.Time
	// readme is README.md's restart figures, made by the restarts section.
	readme string
}

// Limits on the whole run, whatever happens: the full run takes about 20
// minutes and the short one about two, half of it the QUIC section's
// builds and its one scenario.
const (
	fullLimit  = 30 * time.Minute
	shortLimit = 5 * time.Minute
)

func (r *runner) main(chosen []section) int {
	start := time.Now()
	limit := fullLimit
	if r.short {
		limit = shortLimit
	}
	r.deadline = start.Add(limit)
	ctx, cancel := context.WithDeadline(context.Background(), r.deadline)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	r.partial = len(chosen) < len(sections)

	if err := r.prepare(); err != nil {
		log.Print(err)
		return 1
	}
	if err := preflight(chosen); err != nil {
		log.Print(err)
		return 1
	}
	if r.update {
		// Before minutes of measuring: is there a report with these
		// sections to update?
		titles := make(map[string]string)
		for _, s := range chosen {
			titles[s.title] = ""
		}
		if _, err := r.updated(titles); err != nil {
			log.Print(err)
			return 1
		}
	}

	var body strings.Builder
	var failures, names []string
	bodies := make(map[string]string) // title -> markdown, for -update
	for i, s := range chosen {
		log.Printf("section %s: %s", s.name, s.title)
		names = append(names, s.name)
		t0 := time.Now()
		md, err := s.run(r, ctx)
		md = strings.TrimSpace(md) + "\n"
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", s.name, err))
			md += fmt.Sprintf("\n**This section failed:** %v\n", err)
			log.Printf("section %s FAILED after %v: %v", s.name, time.Since(t0).Round(time.Second), err)
		} else {
			log.Printf("section %s done in %v", s.name, time.Since(t0).Round(time.Second))
		}
		fmt.Fprintf(&body, "\n## %d. %s\n\n%s", i+1, s.title, md)
		bodies[s.title] = md
	}

	report := r.header(time.Since(start)) + body.String()
	if r.update {
		for title, md := range bodies {
			bodies[title] = r.updateNote(names) + md
		}
		var err error
		if report, err = r.updated(bodies); err != nil {
			log.Print(err)
			return 1
		}
	}
	path := filepath.Join(r.out, "BENCHMARKS.md")
	failedPath := filepath.Join(r.rawDir(), "BENCHMARKS.failed.md")
	os.Remove(failedPath) // from an earlier run
	if len(failures) > 0 {
		// Keep a committed report intact; the failed one is still there to
		// read.
		path = failedPath
	}
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		log.Print(err)
		return 1
	}
	log.Printf("wrote %s in %v", path, time.Since(start).Round(time.Second))
	if len(failures) == 0 {
		if err := r.writeReadme(); err != nil {
			log.Print(err)
			return 1
		}
	}
	if len(failures) > 0 {
		log.Printf("FAILED: %d of %d sections:\n\t%s", len(failures), len(chosen), strings.Join(failures, "\n\t"))
		return 1
	}
	return 0
}

// prepare finds the bench module and makes the output directories.
func (r *runner) prepare() error {
	out, err := goCmd("", "env", "GOMOD")
	if err != nil {
		return err
	}
	gomod := strings.TrimSpace(out)
	if b, err := os.ReadFile(gomod); err != nil || !strings.Contains(string(b), "module github.com/b93f8b21/reuseport/bench\n") {
		return errors.New("benchall: run me from inside the bench module: cd bench && go run ./cmd/benchall")
	}
	r.benchDir = filepath.Dir(gomod)
	r.commit = commit(r.benchDir)
	r.loadAtStart = loadAverage()
	if r.out == "" {
		if r.out, err = os.MkdirTemp("", "benchall-"); err != nil {
			return err
		}
	}
	if r.out, err = filepath.Abs(r.out); err != nil {
		return err
	}
	return r.prepareDirs()
}

// prepareDirs makes the output directories under r.out.
func (r *runner) prepareDirs() error {
	for _, dir := range []string{r.imgDir(), r.rawDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// imgDir holds the figures, rawDir the raw output behind every figure.
func (r *runner) imgDir() string { return filepath.Join(r.out, "docs", "img") }
func (r *runner) rawDir() string { return filepath.Join(r.out, "bench", "out") }

// rel is a path under the output root as BENCHMARKS.md links it.
func (r *runner) rel(path string) string {
	rel, err := filepath.Rel(r.out, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(rel)
}

// command is how to repeat one section, for the report.
func (r *runner) command(section string) string {
	cmd := "cd bench && go run ./cmd/benchall -sections " + section
	if r.short {
		cmd += " -short"
	}
	if r.n != max(runtime.NumCPU(), 2) {
		cmd += fmt.Sprintf(" -n %d", r.n)
	}
	return cmd + " -out /tmp/bench"
}

// aptInstall is how to get the tools the benchmarks need on Debian.
const aptInstall = "apt-get update && apt-get install -y nginx-light wrk"

// preflight fails at once, before minutes of measuring, when a tool that a
// chosen section needs is missing.
func preflight(chosen []section) error {
	var errs []error
	for _, s := range chosen {
		for _, need := range s.needs {
			if err := need(); err != nil && !slices.ContainsFunc(errs, func(e error) bool { return e.Error() == err.Error() }) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("benchall: missing tools; on Debian install them with\n\t%s\n%w", aptInstall, errors.Join(errs...))
	}
	return nil
}

// childDeadline is when helper processes must have exited.
func (r *runner) childDeadline() time.Time { return r.deadline.Add(30 * time.Second) }
