package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

func TestMain(m *testing.M) { servercmdtest.Main(m, main) }

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
		if servers[i].Addr != addr {
			t.Fatalf("server %d listens on %s, want %s", i, servers[i].Addr, addr)
		}
		pids[servers[i].PID] = true
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
			if counts[s.PID] == 0 {
				t.Errorf("server pid=%d got none of 300 connections: %v", s.PID, counts)
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
		s.Stop(t, sig)
		delete(pids, s.PID)
		if len(pids) == 0 {
			break
		}
		for pid := range get(t, addr, 30) {
			if !pids[pid] {
				t.Errorf("after %v stopped pid=%d, pid %d answered; want one of %v", sig, s.PID, pid, pids)
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
		{"upgrade without handoff", []string{"-upgrade-on-hup"}, 2, "-upgrade-on-hup needs -handoff"},
		{"fdstore without handoff", []string{"-fdstore"}, 2, "-fdstore needs -handoff"},
		{"bad port", []string{"-addr", "127.0.0.1:notaport"}, 1, badPort},
		{"port taken", []string{"-addr", held.Addr().String()}, 1, portTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := servercmdtest.Self(tt.args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := servercmdtest.Run(t, cmd)
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

// TestRunKeepsListenError checks that the program returns the listener's own error,
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
	err = command.Run(t.Context(), []string{"-addr", held.Addr().String()}, io.Discard, serve)
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
	*servercmdtest.Proc
	id string // from the server's own log line
}

var instance = regexp.MustCompile(` id=([0-9a-f]{8}) `)

// startServer starts main in a new process and waits until it says it is
// listening. The process is killed at the end of the test if still running.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	p := servercmdtest.Start(t, servercmdtest.Self(args...))
	m := instance.FindStringSubmatch(p.Ready)
	if m == nil {
		t.Fatalf("server %v said %q, with no id", args, p.Ready)
	}
	return &server{Proc: p, id: m[1]}
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
	if servercmdtest.Listened(first.Log.String(), "fresh") == 0 {
		t.Errorf("the first copy does not say its socket is fresh:\n%s", first.Log)
	}
	second := startServer(t, "-addr", first.Addr, "-handoff", path)
	if servercmdtest.Listened(second.Log.String(), "inherited") == 0 {
		t.Errorf("the successor does not say it inherited its socket:\n%s", second.Log)
	}
	select {
	case <-first.Done:
	case <-time.After(10 * time.Second):
		t.Fatalf("pid=%d still running 10s after its successor served:\n%s", first.PID, first.Log)
	}
	if first.Err != nil {
		t.Fatalf("pid=%d exited with %v, want status 0:\n%s", first.PID, first.Err, first.Log)
	}
	if !strings.Contains(first.Log.String(), "shutting down: a successor took over") {
		t.Errorf("pid=%d did not say why it left:\n%s", first.PID, first.Log)
	}
	for pid := range get(t, first.Addr, 20) {
		if pid != second.PID {
			t.Errorf("pid %d answered after the handoff; want only the successor, pid %d", pid, second.PID)
		}
	}
	second.Stop(t, syscall.SIGTERM)
}
