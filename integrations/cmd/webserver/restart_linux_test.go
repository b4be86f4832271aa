package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

// restarts is how many times TestRollingRestarts replaces the server, and
// pause how long each generation serves before the next replaces it.
const (
	restarts = 8
	pause    = 500 * time.Millisecond
)

// TestRollingRestarts replaces the server restarts times through its
// -handoff path, one generation after the other, under load from clients
// of every protocol it serves:
//
//   - HTTP/2 over TLS: one net/http client whose connections stay open
//     between requests, used by 4 goroutines;
//   - HTTP/1.1 over TLS, a new connection for every request (2 goroutines);
//   - the metrics port, plain HTTP/1.1 keep-alive (1 goroutine);
//   - HTTP/3 with quic-go's client: 2 goroutines keeping a connection and 2
//     opening one for each request.
//
// No request may fail, on any socket. HTTP/3 loss is counted as
// cmd/quicserver's tests count it: a failed dial or request is lost; a
// request refused with H3_REQUEST_REJECTED or held back after a GOAWAY and
// sent again on a new connection is not. Each generation reads a UDP
// socket of its own (Service.OwnSocket) and steer keeps each connection's
// packets on its process's socket, so the old generation finishes its
// connections while new ones go to the new one.
// Last, the metrics of the last generation say it took over once.
func TestRollingRestarts(t *testing.T) {
	bin := buildServer(t)
	port, metricsPort := freePorts(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", metricsPort)
	sock := filepath.Join(t.TempDir(), "webserver.sock")
	start := func() *servercmdtest.Proc {
		t.Helper()
		cmd := exec.Command(bin, "-addr", addr, "-metrics-addr", metricsAddr, "-handoff", sock, "-shutdown-timeout", "10s")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		return servercmdtest.Start(t, cmd)
	}
	gens := []*servercmdtest.Proc{start()}

	// A tls.Config each: net/http's HTTP/2 set-up adds "h2" to the
	// NextProtos of the config it is given.
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}, Timeout: requestTimeout}
	h1 := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: true,
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{}, // no HTTP/2
	}, Timeout: requestTimeout}
	metrics := &http.Client{Transport: &http.Transport{}, Timeout: requestTimeout}
	defer h2.CloseIdleConnections()
	defer metrics.CloseIdleConnections()

	altSvc := fmt.Sprintf(`h3=":%d"; ma=86400`, port)
	udpAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	var h2n, h1n, mn, h3keep, h3new counts
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { tcpClient(ctx, h2, "https://"+addr+"/", 2, altSvc, &h2n) })
	}
	for range 2 {
		wg.Go(func() { tcpClient(ctx, h1, "https://"+addr+"/", 1, altSvc, &h1n) })
		wg.Go(func() { h3Client(ctx, udpAddr, true, &h3keep) })
		wg.Go(func() { h3Client(ctx, udpAddr, false, &h3new) })
	}
	wg.Go(func() { tcpClient(ctx, metrics, "http://"+metricsAddr+"/metrics", 1, "", &mn) })

	began := time.Now()
	for i := range restarts {
		time.Sleep(pause)
		prev := gens[len(gens)-1]
		next := start()
		gens = append(gens, next)
		if err := prev.Wait(t); err != nil {
			t.Errorf("generation %d (pid %d) exited with %v:\n%s", i, prev.PID, err, prev.Log)
		}
		if !strings.Contains(prev.Log.String(), `msg="handoff: drained"`) {
			t.Errorf("generation %d (pid %d) did not log its drain:\n%s", i, prev.PID, prev.Log)
		}
		// The two TCP sockets; the UDP one is its own (OwnSocket).
		if n := servercmdtest.Listened(next.Log.String(), "inherited"); n != 2 {
			t.Errorf("generation %d (pid %d) inherited %d sockets, want 2:\n%s", i+1, next.PID, n, next.Log)
		}
	}
	time.Sleep(pause)
	stop()
	wg.Wait()
	took := time.Since(began)

	last := gens[len(gens)-1]
	page := getMetrics(t, metrics, "http://"+metricsAddr+"/metrics")
	got := parseMetrics(page)
	if pid := metricsPID(page); pid != last.PID {
		t.Errorf("metrics answered by pid %d, want the last generation's, %d:\n%s", pid, last.PID, page)
	}
	if got["handoff_took_over_total"] != "1" || got["handoff_handed_over_total"] != "0" || got["handoff_failed_takeovers_total"] != "0" {
		t.Errorf("the last generation's metrics: took over %s, handed over %s, failed takeovers %s; want 1, 0, 0:\n%s",
			got["handoff_took_over_total"], got["handoff_handed_over_total"], got["handoff_failed_takeovers_total"], page)
	}
	last.Stop(t, syscall.SIGTERM)

	t.Logf("%d restarts in %v", restarts, took.Round(time.Millisecond))
	t.Logf("HTTP/2 keep-alive: %v", &h2n)
	t.Logf("HTTP/1.1 new connection per request: %v", &h1n)
	t.Logf("metrics, HTTP/1.1 keep-alive: %v", &mn)
	t.Logf("HTTP/3 kept connections: %v", &h3keep)
	t.Logf("HTTP/3 new connection per request: %v", &h3new)
	for _, c := range []struct {
		name string
		n    *counts
	}{{"HTTP/2", &h2n}, {"HTTP/1.1", &h1n}, {"metrics", &mn}, {"HTTP/3 kept", &h3keep}, {"HTTP/3 new", &h3new}} {
		if len(c.n.lost) != 0 {
			t.Errorf("%s: %d requests lost: %s", c.name, len(c.n.lost), summarize(c.n.lost))
		}
		if len(c.n.bad) != 0 {
			t.Errorf("%s: %d wrong answers: %s", c.name, len(c.n.bad), summarize(c.n.bad))
		}
		if len(c.n.pids) < 2 {
			t.Errorf("%s: answers from %d processes, want several: %v", c.name, len(c.n.pids), c.n.pids)
		}
	}
	for _, c := range []struct {
		name string
		n    *counts
	}{{"HTTP/3 kept", &h3keep}, {"HTTP/3 new", &h3new}} {
		if c.n.pids[last.PID] == 0 {
			t.Errorf("%s: the last generation (pid %d) answered none: %v", c.name, last.PID, c.n.pids)
		}
	}
	if t.Failed() {
		for _, p := range gens {
			t.Logf("--- pid %d\n%s", p.PID, p.Log)
		}
	}
}

// freePorts returns a port free on 127.0.0.1 for both TCP and UDP, and
// another free for TCP.
func freePorts(t *testing.T) (both, tcp int) {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			ln.Close()
			continue
		}
		other, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tcp = other.Addr().(*net.TCPAddr).Port
		other.Close()
		pc.Close()
		ln.Close()
		return port, tcp
	}
	t.Fatal("no port free for both TCP and UDP in 20 tries")
	return 0, 0
}

func getMetrics(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
