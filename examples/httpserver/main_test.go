package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
)

// envServer makes the test binary run main instead of the tests, so that the
// tests can start real server processes without a separate build.
const envServer = "HTTPSERVER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envServer) != "" {
		main() // exits
	}
	os.Exit(m.Run())
}

// TestThreeProcessesShareOnePort is the example's promise: three copies on
// one address all serve, new connections spread across them, and each stops
// cleanly on a signal while the others go on serving.
func TestThreeProcessesShareOnePort(t *testing.T) {
	capability := reuseport.Capabilities()
	if !capability.Share {
		t.Skipf("this OS cannot share ports: %v", capability.Err)
	}

	// Hold the port with a listener of the group until every server has
	// joined it: no other program can take the port in between, as it
	// could if the test picked a free port and let it go. No client
	// connects before hold closes, so nothing waits in its queue.
	hold, err := reuseport.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	addr := hold.Addr().String()
	servers := make([]*server, 3)
	pids := make(map[int]bool)
	ids := make(map[string]bool)
	for i := range servers {
		servers[i] = startServer(t, "-addr", addr, "-shutdown-timeout", "5s")
		if servers[i].addr != addr {
			t.Fatalf("server %d listens on %s, want %s", i, servers[i].addr, addr)
		}
		pids[servers[i].pid] = true
		ids[servers[i].id] = true
	}
	// The id is what tells copies apart where the pid cannot: in
	// containers, each is pid 1.
	if len(ids) != len(servers) {
		t.Errorf("%d servers logged only %d distinct ids: %v", len(servers), len(ids), ids)
	}
	hold.Close()

	counts := get(t, addr, 300)
	t.Logf("requests served per pid: %v", counts)
	for pid := range counts {
		if !pids[pid] {
			t.Errorf("pid %d answered, but it is none of the servers %v", pid, pids)
		}
	}
	if capability.Balance {
		for _, s := range servers {
			if counts[s.pid] == 0 {
				t.Errorf("server pid=%d got none of 300 connections: %v", s.pid, counts)
			}
		}
	}

	// Stop the servers one at a time; those left must still serve every
	// request, none of which may reach a stopped one.
	for i, s := range servers {
		sig := syscall.SIGTERM
		if i == 1 {
			sig = syscall.SIGINT
		}
		s.stop(t, sig)
		delete(pids, s.pid)
		if len(pids) == 0 {
			break
		}
		for pid := range get(t, addr, 30) {
			if !pids[pid] {
				t.Errorf("after %v stopped pid=%d, pid %d answered; want one of %v", sig, s.pid, pid, pids)
			}
		}
	}
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after every server stopped", addr)
	}
}

// TestCommandLineErrors checks what a user sees for a command line that
// cannot work: a message on stderr, a non-zero status, and no server.
func TestCommandLineErrors(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0") // no SO_REUSEPORT: nobody may join it
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	portTaken, badPort := "address already in use", "unknown port"
	if c := reuseport.Capabilities(); !c.Share {
		// Listen refuses before it looks at the address.
		portTaken, badPort = "cannot share a port", "cannot share a port"
	}

	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantStderr string
	}{
		{"help", []string{"-h"}, 0, "usage: httpserver"},
		{"unknown flag", []string{"-nosuch"}, 2, "flag provided but not defined: -nosuch"},
		{"flag without value", []string{"-addr"}, 2, "flag needs an argument: -addr"},
		{"argument", []string{"-addr", "127.0.0.1:0", "extra"}, 2, `unexpected argument "extra"`},
		{"zero timeout", []string{"-shutdown-timeout", "0s"}, 2, "-shutdown-timeout must be positive"},
		{"bad shutdown", []string{"-shutdown", "fast"}, 2, "-shutdown must be drain or stdlib"},
		{"bad port", []string{"-addr", "127.0.0.1:notaport"}, 1, badPort},
		{"port taken", []string{"-addr", held.Addr().String()}, 1, portTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := serverCommand(tt.args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := runBounded(t, cmd, 10*time.Second)
			status := cmd.ProcessState.ExitCode()
			if status != tt.wantStatus {
				t.Errorf("exit status %d (%v), want %d", status, err, tt.wantStatus)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr does not say %q:\n%s", tt.wantStderr, stderr.String())
			}
			if strings.Contains(stderr.String(), "listening on") {
				t.Errorf("it started serving:\n%s", stderr.String())
			}
		})
	}
}

// TestRunKeepsListenError checks that run returns the listener's own error,
// so that a caller can tell why with errors.Is.
func TestRunKeepsListenError(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	want := error(syscall.EADDRINUSE)
	if c := reuseport.Capabilities(); !c.Share {
		want = errors.ErrUnsupported
	}
	err = run(t.Context(), []string{"-addr", held.Addr().String()}, io.Discard)
	if !errors.Is(err, want) {
		t.Fatalf("run on a port held without SO_REUSEPORT: %v, want an error wrapping %v", err, want)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("run: %T is not a *net.OpError", err)
	}
}

// get sends n requests to addr, each on a new connection, and counts them by
// the pid in the body. Any failed request fails the test, and so does a
// process that names two different ids.
func get(t *testing.T, addr string, n int) map[int]int {
	t.Helper()
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}
	defer client.CloseIdleConnections()
	body := regexp.MustCompile(`^hello from pid=(\d+) id=([0-9a-f]{8})\n$`)

	const workers = 4
	var (
		mu     sync.Mutex
		counts = make(map[int]int)
		ids    = make(map[int]string)
		errs   []error
		wg     sync.WaitGroup
		next   = make(chan struct{})
	)
	for range workers {
		wg.Go(func() {
			for range next {
				pid, id, err := getPID(client, "http://"+addr+"/", body)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case ids[pid] != "" && ids[pid] != id:
					errs = append(errs, fmt.Errorf("pid %d answered with id %s, and before with id %s", pid, id, ids[pid]))
				default:
					counts[pid]++
					ids[pid] = id
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d requests failed, the first: %v", len(errs), n, errs[0])
	}
	return counts
}

// getPID sends one request and returns the pid and id the body names.
func getPID(client *http.Client, url string, body *regexp.Regexp) (pid int, id string, err error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	m := body.FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || m == nil {
		return 0, "", fmt.Errorf("%s: %q, want a body like %q", resp.Status, b, "hello from pid=N id=HEX\n")
	}
	pid, err = strconv.Atoi(string(m[1]))
	return pid, string(m[2]), err
}

// server is a server process started by startServer.
type server struct {
	cmd  *exec.Cmd
	pid  int    // from the server's own log line, not from cmd
	id   string // likewise
	addr string // the address it logged
	log  *lockedBuffer
	done chan struct{} // closed once the process has been waited for
	err  error         // cmd.Wait's, valid after done
}

var listening = regexp.MustCompile(`^httpserver: pid=(\d+) id=([0-9a-f]{8}) listening on (\S+) `)

// startServer starts main in a new process and waits until it says it is
// listening. The process is killed at the end of the test if still running.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	s := &server{cmd: serverCommand(args...), log: new(lockedBuffer), done: make(chan struct{})}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})

	ready := make(chan []string, 1)
	go func() {
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			s.log.WriteString(lines.Text() + "\n")
			if m := listening.FindStringSubmatch(lines.Text()); m != nil {
				select {
				case ready <- m:
				default:
				}
			}
		}
		// A line too long for the scanner ends the loop early: drain the
		// rest, since Wait may be called only once stderr is read to the end.
		io.Copy(io.Discard, stderr)
		s.err = s.cmd.Wait()
		close(s.done)
	}()

	var m []string
	select {
	case m = <-ready:
	case <-s.done:
		t.Fatalf("server %v exited before listening (%v):\n%s", args, s.err, s.log)
	case <-time.After(10 * time.Second):
		t.Fatalf("server %v did not report listening within 10s:\n%s", args, s.log)
	}
	s.pid, _ = strconv.Atoi(m[1])
	s.id, s.addr = m[2], m[3]
	if s.pid != s.cmd.Process.Pid {
		t.Fatalf("server logged pid=%d, but its process is %d", s.pid, s.cmd.Process.Pid)
	}
	return s
}

// stop sends sig and expects the server to exit with status 0 soon after.
func (s *server) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal pid=%d: %v", s.pid, err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("pid=%d still running 10s after %v:\n%s", s.pid, sig, s.log)
	}
	if s.err != nil {
		t.Fatalf("pid=%d after %v: %v, want exit status 0:\n%s", s.pid, sig, s.err, s.log)
	}
	if !strings.Contains(s.log.String(), "shutting down") {
		t.Errorf("pid=%d did not log its shutdown:\n%s", s.pid, s.log)
	}
}

func serverCommand(args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envServer+"=1")
	return cmd
}

// runBounded runs cmd to completion, killing it if it takes longer than d.
func runBounded(t *testing.T, cmd *exec.Cmd, d time.Duration) error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(d, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("%v ran for more than %v and was killed", cmd.Args, d)
	}
	return err
}

// lockedBuffer collects a server's log while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.WriteString(s)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestHandoffReplacesServer is -handoff's promise in the small: a second copy
// started with the same -addr and -handoff takes over the socket, and the
// first leaves by itself, with status 0, as soon as the second serves.
func TestHandoffReplacesServer(t *testing.T) {
	if c := reuseport.Capabilities(); !c.Share {
		t.Skipf("this OS cannot share ports: %v", c.Err)
	}
	path := filepath.Join(t.TempDir(), "w1.sock")
	first := startServer(t, "-addr", "127.0.0.1:0", "-handoff", path)
	if !strings.Contains(first.log.String(), "socket: fresh") {
		t.Errorf("the first copy does not say its socket is fresh:\n%s", first.log)
	}
	second := startServer(t, "-addr", first.addr, "-handoff", path)
	if !strings.Contains(second.log.String(), "socket: inherited") {
		t.Errorf("the successor does not say it inherited its socket:\n%s", second.log)
	}
	select {
	case <-first.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("pid=%d still running 10s after its successor served:\n%s", first.pid, first.log)
	}
	if first.err != nil {
		t.Fatalf("pid=%d exited with %v, want status 0:\n%s", first.pid, first.err, first.log)
	}
	if !strings.Contains(first.log.String(), "shutting down: a successor took over") {
		t.Errorf("pid=%d did not say why it left:\n%s", first.pid, first.log)
	}
	for pid := range get(t, first.addr, 20) {
		if pid != second.pid {
			t.Errorf("pid %d answered after the handoff; want only the successor, pid %d", pid, second.pid)
		}
	}
	second.stop(t, syscall.SIGTERM)
}
