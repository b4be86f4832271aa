// Package servercmdtest runs the server commands built on servercmd as
// their tests do: it builds a command once per test binary, starts it,
// waits until it logs that it serves, and stops it.
package servercmdtest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/nstest"
)

// ReadyLine is what a servercmd command logs once it serves (see
// servercmd.Flags.HandoffConfig).
const ReadyLine = "listening on"

// Listened counts the records in log that say a socket came from origin
// ("fresh", "inherited" or "activated"): one for each socket a server
// listens on, logged by handoff.Run or handoff.Handoff.Listen.
func Listened(log, origin string) int {
	return len(regexp.MustCompile(`msg="handoff: listening" [^\n]*origin=`+regexp.QuoteMeta(origin)+`\b`).FindAllStringIndex(log, -1))
}

// Timeout bounds each wait of this package: for a server to serve, and for
// one to exit.
const Timeout = 10 * time.Second

var built struct {
	mu   sync.Mutex
	dir  string            // made on first use, removed by RunTests
	bins map[string]string // by name
}

// RunTests runs m and then removes the binaries Build made. Call it from
// TestMain: os.Exit(servercmdtest.RunTests(m)).
func RunTests(m *testing.M) int {
	code := m.Run()
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	return code
}

// Build runs "go ARGS -o BIN PKG" in the test's package directory (args
// are "build" or "test", "-c", and flags; pkg is "." for the test's own
// package), once per name and test binary run, and returns BIN, named
// name. It builds without -race unless args say otherwise: the servers are
// what a test measures, not the race detector.
func Build(t testing.TB, name, pkg string, args ...string) string {
	t.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	if bin, ok := built.bins[name]; ok {
		return bin
	}
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "servercmdtest")
		if err != nil {
			t.Fatal(err)
		}
		built.dir, built.bins = dir, make(map[string]string)
	}
	bin := filepath.Join(built.dir, name)
	cmd := exec.Command("go", append(args, "-o", bin, pkg)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	built.bins[name] = bin
	return bin
}

// Binary returns the command in pkg, built by Build(t, name, pkg,
// "build", flags...) in the process go test started, outside any namespace
// (where the module cache and the network are), and passed in the
// environment variable env to the child that nstest.Isolate starts, and
// to any other test binary this one runs. A binary env names already (one
// built with -race, say) is used as it is. Call it before nstest.Isolate.
func Binary(t *testing.T, env, name, pkg string, flags ...string) string {
	t.Helper()
	if bin := os.Getenv(env); bin != "" {
		return bin
	}
	if nstest.InChild() {
		t.Fatalf("%s is not set in the namespace: call Binary before nstest.Isolate", env)
	}
	bin := Build(t, name, pkg, append([]string{"build"}, flags...)...)
	t.Setenv(env, bin)
	return bin
}

// Log collects a server's output while a test reads it.
type Log struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p; it never fails.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Proc is a server process started by Start.
type Proc struct {
	Cmd   *exec.Cmd
	Ready string // the line that said it serves
	PID   int    // the pid the line named, which is the process's
	Addr  string // the address it said it listens on
	Log   *Log   // its stderr, line by line
	Done  chan struct{}
	Err   error // cmd.Wait's, valid once Done is closed
}

// readyLine is a servercmd command's ReadyLine, after its log prefix.
var readyLine = regexp.MustCompile(`: pid=(\d+) .*` + ReadyLine + ` (\S+) `)

// Start starts cmd, a servercmd command, and waits, for at most Timeout,
// until a line of its stderr says it serves (holds ReadyLine). It fails
// the test if cmd exits or stays silent instead, or if the line does not
// name the process's pid. The process is killed at the end of the test if
// it still runs.
func Start(t *testing.T, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Cmd: cmd, Log: new(Log), Done: make(chan struct{})}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.Done
	})
	ready := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			io.WriteString(p.Log, lines.Text()+"\n")
			if strings.Contains(lines.Text(), ReadyLine) {
				select {
				case ready <- lines.Text():
				default:
				}
			}
		}
		// A line too long for the scanner ends the loop early: drain the
		// rest, since Wait may be called only once stderr is read to the end.
		io.Copy(io.Discard, stderr)
		p.Err = cmd.Wait()
		close(p.Done)
	}()
	select {
	case p.Ready = <-ready:
	case <-p.Done:
		t.Fatalf("%v exited before it served (%v):\n%s", cmd.Args, p.Err, p.Log)
	case <-time.After(Timeout):
		t.Fatalf("%v did not say %q within %v:\n%s", cmd.Args, ReadyLine, Timeout, p.Log)
	}
	m := readyLine.FindStringSubmatch(p.Ready)
	if m == nil {
		t.Fatalf("%v said %q, want a line like %q", cmd.Args, p.Ready, readyLine)
	}
	p.PID, _ = strconv.Atoi(m[1])
	p.Addr = m[2]
	if p.PID != cmd.Process.Pid {
		t.Fatalf("%v logged pid=%d, but its process is %d", cmd.Args, p.PID, cmd.Process.Pid)
	}
	return p
}

// Wait waits, for at most Timeout, until the process exits by itself, and
// returns its error.
func (p *Proc) Wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.Done:
		return p.Err
	case <-time.After(Timeout):
		t.Fatalf("pid %d still running %v later:\n%s", p.PID, Timeout, p.Log)
		return nil
	}
}

// Stop sends sig and expects the process to exit with status 0 within
// Timeout, having logged that it was shutting down.
func (p *Proc) Stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal pid %d: %v", p.PID, err)
	}
	if err := p.Wait(t); err != nil {
		t.Fatalf("pid %d after %v: %v, want exit status 0:\n%s", p.PID, sig, err, p.Log)
	}
	if !strings.Contains(p.Log.String(), "shutting down") {
		t.Errorf("pid %d did not log its shutdown:\n%s", p.PID, p.Log)
	}
}

// envRunMain makes a test binary run the command's main instead of its
// tests: see Main and Self.
const envRunMain = "SERVERCMDTEST_RUN_MAIN"

// Main is the TestMain of a command's package whose tests run the test
// binary itself as the command (see Self): started by Self, the binary
// runs main, which exits; else it runs the tests and then RunTests'
// clean-up.
func Main(m *testing.M, main func()) {
	if os.Getenv(envRunMain) != "" {
		main()
	}
	os.Exit(RunTests(m))
}

// Self is the command that runs this test binary, through Main, as the
// command under test, with args. Unlike a binary made by Build it needs
// no build, and has the race detector if the tests have it.
func Self(args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	return cmd
}

// Run runs cmd to completion and returns its error, killing it and failing
// the test if it takes longer than Timeout.
func Run(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(Timeout, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("%v ran for more than %v and was killed", cmd.Args, Timeout)
	}
	return err
}
