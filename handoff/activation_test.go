//go:build darwin || freebsd || linux

package handoff_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/internal/test/testenv"
	"golang.org/x/sys/unix"
)

const (
	envActMode  = "HANDOFF_TEST_ACT_MODE"  // "match" or "mismatch"
	envActAddrs = "HANDOFF_TEST_ACT_ADDRS" // "tcp-addr udp-addr"
)

// activatedFDs are the descriptors the activation test passes, as systemd
// would: 3 web (TCP), 4 dns (UDP), 5 spare (TCP, never claimed), 6 pipe.
const activatedFDs = 4

// runActivation is a process started the way systemd starts a socket
// activated service. It checks what Start did with the descriptors and
// the environment, reports its sockets, and answers one connection and
// one datagram.
func runActivation() int {
	var problems []string
	problemf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	mode := os.Getenv(envActMode)
	tcpAddr, udpAddr, _ := strings.Cut(os.Getenv(envActAddrs), " ")

	inodes := make(map[int]uint64)
	for fd := 3; fd < 3+activatedFDs; fd++ {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			problemf("fd %d not passed: %v", fd, err)
			continue
		}
		inodes[fd] = uint64(st.Ino)
		if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC != 0 {
			problemf("fd %d passed close-on-exec", fd)
		}
	}
	// still reports whether fd is the very descriptor passed at exec.
	still := func(fd int) bool {
		var st unix.Stat_t
		return unix.Fstat(fd, &st) == nil && uint64(st.Ino) == inodes[fd]
	}

	switch mode {
	case "failfirst":
		return runFailedActivation(tcpAddr)
	case "closeerr":
		return runCloseError()
	case "optout":
		return runWithoutActivation(tcpAddr, still)
	}
	h, err := handoff.Start(context.Background(), handoff.Config{Path: os.Getenv(envPath), Activation: true, Logger: stderrLogger})
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error()})
		return 1
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if s, ok := os.LookupEnv(v); ok {
			problemf("%s=%q still set after Start", v, s)
		}
	}
	if mode == "mismatch" {
		ln, err := h.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			emit(event{Ev: "error", Msg: err.Error()})
			return 1
		}
		defer ln.Close()
		for fd := 3; fd < 3+activatedFDs; fd++ {
			if !still(fd) {
				problemf("fd %d, not meant for this process, was touched", fd)
			}
		}
		if err := h.Ready(); err != nil {
			problemf("Ready: %v", err)
		}
		emit(event{Ev: "result", Sockets: sockEvents(h), Msg: strings.Join(problems, "; ")})
		return 0
	}

	for fd := 3; fd < 3+activatedFDs; fd++ {
		if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
			problemf("fd %d not made close-on-exec by Start", fd)
		}
	}
	ln, err := h.Listen(context.Background(), "tcp", tcpAddr)
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error()})
		return 1
	}
	pc, err := h.ListenPacket(context.Background(), "udp", udpAddr)
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error()})
		return 1
	}
	if err := h.Ready(); err != nil {
		problemf("Ready: %v", err)
	}
	for fd := 3; fd < 3+activatedFDs; fd++ {
		if still(fd) {
			problemf("fd %d still open after Ready", fd)
		}
	}
	srv := server{lns: []net.Listener{ln}, pcs: []net.PacketConn{pc}}
	srv.start()
	emit(event{Ev: "result", Sockets: sockEvents(h), Msg: strings.Join(problems, "; ")})
	// Serve until the test closes stdin.
	var b [1]byte
	os.Stdin.Read(b[:])
	srv.stop()
	return 0
}

// TestActivation starts the test binary as systemd starts a socket
// activated service, with LISTEN_PID set by the shell that execs it:
// Listen and ListenPacket must return the passed sockets, matched by
// address, with their names; Start must unset the variables and mark the
// descriptors close-on-exec; Ready must close the ones nobody claimed.
func TestActivation(t *testing.T) {
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()
	spareLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer spareLn.Close()
	udpConn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpConn.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	files := []*os.File{fileOf(t, tcpLn), fileOf(t, udpConn), fileOf(t, spareLn), pr}

	cmd := activationCmd(t, `LISTEN_PID=$$`, files,
		envActMode+"=match",
		envActAddrs+"="+tcpLn.Addr().String()+" "+udpConn.LocalAddr().String(),
		"LISTEN_FDS=4", "LISTEN_FDNAMES=web:dns:spare:pipe")
	p := runProc(t, cmd)
	for _, f := range files {
		f.Close()
	}
	e := p.expect("result", 20*time.Second)
	if e.Msg != "" {
		t.Errorf("in the activated process: %s", e.Msg)
	}
	want := []sockEvent{
		{"tcp", tcpLn.Addr().String(), "activated", "web"},
		{"udp", udpConn.LocalAddr().String(), "activated", "dns"},
	}
	if fmt.Sprint(e.Sockets) != fmt.Sprint(want) {
		t.Errorf("sockets %v, want %v", e.Sockets, want)
	}
	// Only the child holds the sockets now.
	tcpLn.Close()
	udpConn.Close()
	spareLn.Close()
	if pid := askPID(t, "tcp", tcpLn.Addr().String()); pid != p.pid() {
		t.Errorf("TCP answered by pid %d, want %d", pid, p.pid())
	}
	if pid := askPID(t, "udp", udpConn.LocalAddr().String()); pid != p.pid() {
		t.Errorf("UDP answered by pid %d, want %d", pid, p.pid())
	}
	if c, err := net.Dial("tcp", spareLn.Addr().String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the unclaimed socket is still open in the child: dial gave %v", err)
		if c != nil {
			c.Close()
		}
	}
	p.stdin.Close()
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestActivationOtherPID checks that descriptors meant for another process
// (LISTEN_PID is not ours) are left alone, and the variables still unset.
func TestActivationOtherPID(t *testing.T) {
	var files []*os.File
	for range activatedFDs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		files = append(files, fileOf(t, ln))
	}
	cmd := activationCmd(t, `LISTEN_PID=1`, files, envActMode+"=mismatch", "LISTEN_FDS=4")
	p := runProc(t, cmd)
	for _, f := range files {
		f.Close()
	}
	e := p.expect("result", 20*time.Second)
	if e.Msg != "" {
		t.Errorf("in the child: %s", e.Msg)
	}
	if len(e.Sockets) != 1 || e.Sockets[0].Origin != "fresh" {
		t.Errorf("sockets %v, want one fresh", e.Sockets)
	}
	p.wait(10 * time.Second)
}

// activationCmd runs the test binary through sh, which sets LISTEN_PID to
// its own pid ($$) and execs the binary under that same pid.
func activationCmd(t *testing.T, setPID string, files []*os.File, env ...string) *exec.Cmd {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		testenv.SkipOrFail(t, testenv.RequireNetns, "no shell to set LISTEN_PID: %v", err)
	}
	cmd := exec.Command(sh, "-c", setPID+` exec "$0"`, os.Args[0])
	cmd.ExtraFiles = files
	cmd.Env = append(os.Environ(), append([]string{envRole + "=activation", envPath + "=" + sockPath(t)}, env...)...)
	return cmd
}

func fileOf(t *testing.T, c any) *os.File {
	t.Helper()
	f, err := c.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// runFailedActivation calls Start with a Path it cannot use, then with a
// good one: the failed Start must leave the activated socket and the
// environment as they were, for the second to take.
func runFailedActivation(tcpAddr string) int {
	var problems []string
	_, err := handoff.Start(context.Background(), handoff.Config{Path: "/nonexistent-dir/handoff.sock", Activation: true, Logger: stderrLogger})
	if err == nil {
		problems = append(problems, "Start with a Path in a missing directory succeeded")
	}
	if os.Getenv("LISTEN_FDS") != "1" {
		problems = append(problems, fmt.Sprintf("LISTEN_FDS=%q after a failed Start, want \"1\"", os.Getenv("LISTEN_FDS")))
	}
	h, err := handoff.Start(context.Background(), handoff.Config{Path: os.Getenv(envPath), Activation: true, Logger: stderrLogger})
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error()})
		return 1
	}
	defer h.Close()
	ln, err := h.Listen(context.Background(), "tcp", tcpAddr)
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error()})
		return 1
	}
	defer ln.Close()
	emit(event{Ev: "result", Sockets: sockEvents(h), Msg: strings.Join(problems, "; ")})
	return 0
}

// TestActivationAfterFailedStart: a Start that fails must leave systemd's
// sockets and variables for the next Start.
func TestActivationAfterFailedStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	files := []*os.File{fileOf(t, ln)}
	cmd := activationCmd(t, `LISTEN_PID=$$`, files, envActMode+"=failfirst",
		envActAddrs+"="+ln.Addr().String()+" ", "LISTEN_FDS=1", "LISTEN_FDNAMES=web")
	p := runProc(t, cmd)
	files[0].Close()
	e := p.expect("result", 20*time.Second)
	if e.Msg != "" {
		t.Errorf("in the activated process: %s", e.Msg)
	}
	want := []sockEvent{{"tcp", ln.Addr().String(), "activated", "web"}}
	if fmt.Sprint(e.Sockets) != fmt.Sprint(want) {
		t.Errorf("sockets after a failed Start and a good one: %v, want %v", e.Sockets, want)
	}
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// runCloseError makes closing an unclaimed activated socket fail, by
// closing its descriptor behind the Handoff's back: Close must say so.
func runCloseError() int {
	h, err := handoff.Start(context.Background(), handoff.Config{Path: os.Getenv(envPath), Activation: true, Logger: stderrLogger})
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error()})
		return 1
	}
	unix.Close(listenFDsStart)
	msg := ""
	if err := h.Close(); err == nil {
		msg = "Close returned nil, though closing the unclaimed socket failed"
	} else {
		stderrLogf("Close: %v", err)
	}
	emit(event{Ev: "result", Msg: msg})
	return 0
}

// TestCloseReportsErrors: Close reports what failed.
func TestCloseReportsErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	files := []*os.File{fileOf(t, ln)}
	p := runProc(t, activationCmd(t, `LISTEN_PID=$$`, files, envActMode+"=closeerr", "LISTEN_FDS=1"))
	files[0].Close()
	if e := p.expect("result", 20*time.Second); e.Msg != "" {
		t.Errorf("in the activated process: %s", e.Msg)
	}
	p.wait(10 * time.Second)
}

const listenFDsStart = 3

// runWithoutActivation calls Start without Config.Activation: the
// activated socket, its descriptor and the variables must stay as they
// were, and Listen must bind a fresh socket.
func runWithoutActivation(tcpAddr string, still func(fd int) bool) int {
	var problems []string
	h, err := handoff.Start(context.Background(), handoff.Config{Path: os.Getenv(envPath), Logger: stderrLogger})
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error()})
		return 1
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := os.LookupEnv(v); !ok {
			problems = append(problems, v+" unset by a Start without Activation")
		}
	}
	// Any port: the activated socket is not reuseport, so a fresh bind on
	// its port would fail.
	ln, err := h.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error()})
		return 1
	}
	defer ln.Close()
	if err := h.Ready(); err != nil {
		problems = append(problems, fmt.Sprintf("Ready: %v", err))
	}
	if err := h.Close(); err != nil {
		problems = append(problems, fmt.Sprintf("Close: %v", err))
	}
	if !still(listenFDsStart) {
		problems = append(problems, "the activated descriptor was touched by a Start without Activation")
	}
	if flags, _ := unix.FcntlInt(listenFDsStart, unix.F_GETFD, 0); flags&unix.FD_CLOEXEC != 0 {
		problems = append(problems, "the activated descriptor was made close-on-exec")
	}
	emit(event{Ev: "result", Sockets: sockEvents(h), Msg: strings.Join(problems, "; ")})
	return 0
}

// TestNoActivationWithoutOptIn: without Config.Activation, Start leaves
// systemd's sockets and variables to the program, which may mean them
// for something else.
func TestNoActivationWithoutOptIn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	files := []*os.File{fileOf(t, ln)}
	p := runProc(t, activationCmd(t, `LISTEN_PID=$$`, files, envActMode+"=optout",
		envActAddrs+"="+ln.Addr().String()+" ", "LISTEN_FDS=1", "LISTEN_FDNAMES=web"))
	files[0].Close()
	e := p.expect("result", 20*time.Second)
	if e.Msg != "" {
		t.Errorf("in the process: %s", e.Msg)
	}
	if len(e.Sockets) != 1 || e.Sockets[0].Origin != "fresh" {
		t.Errorf("sockets %v, want one fresh", e.Sockets)
	}
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
