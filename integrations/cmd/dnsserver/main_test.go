package main

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

func TestMain(m *testing.M) { servercmdtest.Main(m, main) }

// The name every test asks for: its TXT record names the pid that answered.
const (
	testZone = "example.test."
	testName = "pid." + testZone
)

// TestHandoffTakesBothSockets is -handoff's promise in the small: a second
// copy takes the first's UDP socket and TCP listener, the first exits 0 by
// itself, and queries on both transports reach the second.
func TestHandoffTakesBothSockets(t *testing.T) {
	if c := reuseport.Capabilities(); !c.Share {
		t.Skipf("this OS cannot share ports: %v", c.Err)
	}
	addr := freePort(t)
	path := filepath.Join(t.TempDir(), "w1.sock")
	first := servercmdtest.Start(t, servercmdtest.Self("-addr", addr, "-handoff", path, "-shutdown-timeout", "5s"))
	for _, network := range []string{"udp", "tcp"} {
		if pid := ask(t, network, addr); pid != first.PID {
			t.Fatalf("%s: answered by pid %d, want the first copy, %d", network, pid, first.PID)
		}
	}
	second := servercmdtest.Start(t, servercmdtest.Self("-addr", addr, "-handoff", path))
	if n := servercmdtest.Listened(second.Log.String(), "inherited"); n != 2 {
		t.Errorf("the successor says it inherited %d sockets, want 2 (udp and tcp):\n%s", n, second.Log)
	}
	if err := first.Wait(t); err != nil {
		t.Fatalf("pid %d exited with %v, want status 0:\n%s", first.PID, err, first.Log)
	}
	if !strings.Contains(first.Log.String(), "shutting down: a successor took over") {
		t.Errorf("pid %d did not say why it left:\n%s", first.PID, first.Log)
	}
	for _, network := range []string{"udp", "tcp"} {
		if pid := ask(t, network, addr); pid != second.PID {
			t.Errorf("%s: answered by pid %d after the handoff, want the successor, %d", network, pid, second.PID)
		}
	}
	second.Stop(t, syscall.SIGTERM)
}

// TestAnswers checks the zone's answers on both transports.
func TestAnswers(t *testing.T) {
	addr := freePort(t)
	p := servercmdtest.Start(t, servercmdtest.Self("-addr", addr, "-zone", "Example.Test", "-a", "192.0.2.7"))
	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  string // the answer's data; "" for none
	}{
		{"www.example.test.", dns.TypeA, dns.RcodeSuccess, "192.0.2.7"},
		{"a.b.EXAMPLE.test.", dns.TypeA, dns.RcodeSuccess, "192.0.2.7"},
		{"example.test.", dns.TypeTXT, dns.RcodeSuccess, "pid="},
		{"www.example.test.", dns.TypeMX, dns.RcodeSuccess, ""},
		{"www.example.org.", dns.TypeA, dns.RcodeRefused, ""},
	}
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 5 * time.Second}
		for _, tt := range tests {
			r, _, err := c.Exchange(new(dns.Msg).SetQuestion(tt.name, tt.qtype), addr)
			if err != nil {
				t.Fatalf("%s %s %s: %v", network, tt.name, dns.TypeToString[tt.qtype], err)
			}
			got := ""
			if len(r.Answer) == 1 {
				got = strings.TrimPrefix(r.Answer[0].String(), r.Answer[0].Header().String())
			}
			if r.Rcode != tt.rcode || !r.Authoritative || len(r.Answer) > 1 || tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("%s %s %s: rcode %s, aa %v, answer %v; want rcode %s, aa, answer %q", network, tt.name, dns.TypeToString[tt.qtype],
					dns.RcodeToString[r.Rcode], r.Authoritative, r.Answer, dns.RcodeToString[tt.rcode], tt.want)
			}
		}
	}
	p.Stop(t, syscall.SIGTERM)
}

// TestCommandLineErrors checks what a user sees for a command line that
// cannot work: a message on stderr, status 2, and no server.
func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantStderr string
	}{
		{"help", []string{"-h"}, 0, "usage: dnsserver"},
		{"unknown flag", []string{"-nosuch"}, 2, "flag provided but not defined: -nosuch"},
		{"argument", []string{"-addr", "127.0.0.1:5353", "extra"}, 2, `unexpected argument "extra"`},
		{"port 0", []string{"-addr", "127.0.0.1:0"}, 2, "-addr must name a port"},
		{"bad zone", []string{"-zone", "a..b"}, 2, "-zone is not a domain name"},
		{"bad address", []string{"-a", "2001:db8::1"}, 2, "-a must be an IPv4 address"},
		{"zero timeout", []string{"-shutdown-timeout", "0s"}, 2, "-shutdown-timeout must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := servercmdtest.Self(tt.args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := servercmdtest.Run(t, cmd)
			if status := cmd.ProcessState.ExitCode(); status != tt.wantStatus {
				t.Errorf("exit status %d (%v), want %d", status, err, tt.wantStatus)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr does not say %q:\n%s", tt.wantStderr, stderr.String())
			}
		})
	}
}

// ask queries testName's TXT record over network and returns the pid
// that answered.
func ask(t *testing.T, network, addr string) int {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(new(dns.Msg).SetQuestion(testName, dns.TypeTXT), addr)
	if err != nil {
		t.Fatalf("%s query: %v", network, err)
	}
	return txtPID(r)
}

// freePort returns a loopback address whose port is free on both UDP and
// TCP as this returns; the server binds it a moment later.
func freePort(t *testing.T) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no loopback port free on both UDP and TCP in 20 tries")
	return ""
}

// txtPID returns N of the "pid=N" TXT record in r, or 0.
func txtPID(r *dns.Msg) int {
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok && len(txt.Txt) == 1 {
			if n, ok := strings.CutPrefix(txt.Txt[0], "pid="); ok {
				pid, _ := strconv.Atoi(n)
				return pid
			}
		}
	}
	return 0
}
