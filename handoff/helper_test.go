//go:build darwin || freebsd || linux

package handoff_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
)

// The tests run real predecessors and successors: the test binary,
// re-executed with envRole set, becomes a server process driven over its
// stdin and reporting events as JSON lines on its stdout.
const (
	envRole    = "HANDOFF_TEST_ROLE"    // "server", "hello" or "activation"
	envPath    = "HANDOFF_TEST_PATH"    // Config.Path
	envListen  = "HANDOFF_TEST_LISTEN"  // "tcp 127.0.0.1:0;udp 127.0.0.1:0"
	envTimeout = "HANDOFF_TEST_TIMEOUT" // Config.Timeout
	envHook    = "HANDOFF_TEST_HOOK"    // "hello=exit", "offered=stall", ...
	envVersion = "HANDOFF_TEST_VERSION" // "2-2": protocol versions to speak
)

func TestMain(m *testing.M) {
	switch role := os.Getenv(envRole); role {
	case "":
		os.Exit(m.Run())
	case "server":
		os.Exit(runServer())
	case "hello":
		os.Exit(runHello())
	case "activation":
		os.Exit(runActivation())
	case "runall":
		os.Exit(runRunAll())
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", envRole, role)
		os.Exit(2)
	}
}

// event is one line a helper process reports.
type event struct {
	Ev         string      `json:"ev"` // started, ready, done, error, result
	Pid        int         `json:"pid,omitempty"`
	Sockets    []sockEvent `json:"sockets,omitempty"`
	Msg        string      `json:"msg,omitempty"`
	Permission bool        `json:"permission,omitempty"` // the error wraps os.ErrPermission
	Refused    bool        `json:"refused,omitempty"`
	FDs        int         `json:"fds,omitempty"`
}

type sockEvent struct {
	Network, Addr, Origin, Name string
}

var emitMu sync.Mutex

func emit(e event) {
	emitMu.Lock()
	defer emitMu.Unlock()
	e.Pid = os.Getpid()
	b, _ := json.Marshal(e)
	os.Stdout.Write(append(b, '\n'))
}

func stderrLogf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[pid %d] "+format+"\n", append([]any{os.Getpid()}, args...)...)
}

// stderrLogger logs a helper process's records to its stderr, which the
// test shows when it fails.
var stderrLogger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pid", os.Getpid())

func sockEvents(h *handoff.Handoff) []sockEvent {
	var out []sockEvent
	for _, s := range handoff.Sockets(h) {
		out = append(out, sockEvent{s.Network, s.Addr, s.Origin, s.Name})
	}
	return out
}

// runServer is a server process: Start, Listen on every socket in
// envListen, report "started", then obey commands: "ready" (call Ready),
// "serve" (answer on every socket), "exit" (exit at once, as a crash
// would). When Done closes it stops accepting, finishes its
// connections, reports "done" and exits 0.
func runServer() int {
	cfg := handoff.Config{Path: os.Getenv(envPath), Logger: stderrLogger}
	if s := os.Getenv(envTimeout); s != "" {
		cfg.Timeout, _ = time.ParseDuration(s)
	}
	lo, hi := handoff.MinVersion, handoff.MaxVersion
	if s := os.Getenv(envVersion); s != "" {
		a, b, _ := strings.Cut(s, "-")
		l, _ := strconv.Atoi(a)
		u, _ := strconv.Atoi(b)
		lo, hi = uint16(l), uint16(u)
	}
	h, err := handoff.StartVersions(context.Background(), cfg, lo, hi)
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error(), Permission: errors.Is(err, os.ErrPermission)})
		return 1
	}
	if s := os.Getenv(envHook); s != "" {
		stage, action, _ := strings.Cut(s, "=")
		handoff.SetHook(h, func(st string) {
			if st != stage {
				return
			}
			stderrLogf("hook at %s: %s", st, action)
			switch action {
			case "exit":
				os.Exit(7)
			case "stall":
				select {}
			}
		})
	}
	var srv server
	for _, spec := range strings.Split(os.Getenv(envListen), ";") {
		network, address, _ := strings.Cut(spec, " ")
		if strings.HasPrefix(network, "udp") {
			pc, err := h.ListenPacket(context.Background(), network, address)
			if err != nil {
				emit(event{Ev: "error", Msg: err.Error()})
				return 1
			}
			srv.pcs = append(srv.pcs, pc)
		} else {
			ln, err := h.Listen(context.Background(), network, address)
			if err != nil {
				emit(event{Ev: "error", Msg: err.Error()})
				return 1
			}
			srv.lns = append(srv.lns, ln)
		}
	}
	emit(event{Ev: "started", Sockets: sockEvents(h)})

	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
		close(cmds) // the test is gone
	}()
	for {
		select {
		case cmd, ok := <-cmds:
			switch {
			case !ok:
				return 3
			case cmd == "ready":
				if err := h.Ready(); err != nil {
					emit(event{Ev: "error", Msg: err.Error()})
					return 1
				}
				emit(event{Ev: "ready", Sockets: sockEvents(h)})
			case cmd == "serve":
				srv.start()
			case cmd == "exit":
				os.Exit(0)
			}
		case <-h.Done():
			srv.stop()
			h.Close()
			emit(event{Ev: "done"})
			return 0
		}
	}
}

// server answers each TCP connection and each datagram with its pid.
type server struct {
	lns []net.Listener
	pcs []net.PacketConn
	wg  sync.WaitGroup
}

func (s *server) start() {
	reply := []byte(strconv.Itoa(os.Getpid()) + "\n")
	for _, ln := range s.lns {
		s.wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				s.wg.Go(func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(20 * time.Second))
					var b [1]byte
					if _, err := io.ReadFull(c, b[:]); err == nil {
						c.Write(reply)
					}
				})
			}
		})
	}
	for _, pc := range s.pcs {
		s.wg.Go(func() {
			buf := make([]byte, 2048)
			for {
				_, addr, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(reply, addr)
			}
		})
	}
}

// stop closes the listeners, which the successor holds too, and waits for
// the connections already accepted.
func (s *server) stop() {
	for _, ln := range s.lns {
		ln.Close()
	}
	for _, pc := range s.pcs {
		pc.Close()
	}
	s.wg.Wait()
}

// runHello plays a successor by hand: it sends a hello and reports what
// came back, without using the package's successor code.
func runHello() int {
	c, err := net.DialTimeout("unix", os.Getenv(envPath), 5*time.Second)
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error(), Permission: errors.Is(err, os.ErrPermission)})
		return 1
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	uc.SetDeadline(time.Now().Add(5 * time.Second))
	// A predecessor that refuses may close before reading the hello, so a
	// failed write is no failure: what matters is what comes back.
	uc.Write(handoff.HelloFrame(handoff.MinVersion, handoff.MaxVersion))
	buf, oob := make([]byte, 4096), make([]byte, 4096)
	var got []byte
	fds := 0
	for {
		n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
		if err != nil || n <= 0 {
			break
		}
		got = append(got, buf[:n]...)
		fds += countRights(oob[:oobn])
	}
	emit(event{Ev: "result", Refused: len(got) > 0 && got[0] == handoff.MsgRefuse, FDs: fds, Msg: string(got)})
	return 0
}

// proc is a helper process, seen from the test.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan event
	stderr syncBuffer
	exited chan struct{}
	err    error // from Wait, once exited is closed

	backlog []event // read by expectFrom and not matched yet
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startProc starts the test binary in the given role.
func startProc(t testing.TB, role string, env ...string) *proc {
	t.Helper()
	return runProc(t, newProcCmd(role, env...))
}

// newProcCmd is the command that starts the test binary in role.
func newProcCmd(role string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append([]string{envRole + "=" + role}, env...)...)
	return cmd
}

func runProc(t testing.TB, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{t: t, cmd: cmd, events: make(chan event, 64), exited: make(chan struct{})}
	cmd.Stderr = &p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = event{Ev: "garbage", Msg: sc.Text()}
			}
			p.events <- e
		}
		close(p.events)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("stderr of pid %d:\n%s", cmd.Process.Pid, p.stderr.String())
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// expect waits for the next event, which must be want.
func (p *proc) expect(want string, timeout time.Duration) event {
	p.t.Helper()
	select {
	case e, ok := <-p.events:
		if !ok {
			<-p.exited
			p.t.Fatalf("pid %d exited (%v) while the test waited for %q; stderr:\n%s", p.pid(), p.err, want, p.stderr.String())
		}
		if e.Ev != want {
			p.t.Fatalf("pid %d reported %+v, want %q; stderr:\n%s", p.pid(), e, want, p.stderr.String())
		}
		return e
	case <-time.After(timeout):
		p.t.Fatalf("pid %d: no %q within %v; stderr:\n%s", p.pid(), want, timeout, p.stderr.String())
	}
	panic("unreachable")
}

func (p *proc) send(cmd string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		p.t.Fatalf("pid %d: sending %q: %v", p.pid(), cmd, err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("pid %d did not exit within %v; stderr:\n%s", p.pid(), timeout, p.stderr.String())
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	p.t.Fatalf("pid %d: %v", p.pid(), p.err)
	return -1
}

// ready tells the process to call Ready and to serve, and waits for it.
func (p *proc) readyAndServe() {
	p.t.Helper()
	p.send("serve")
	p.send("ready")
	p.expect("ready", 10*time.Second)
}

// askPID opens a connection to addr, sends a byte and returns the pid in
// the answer.
func askPID(t testing.TB, network, addr string) int {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatalf("write to %s %s: %v", network, addr, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s %s: %v", network, addr, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("answer %q from %s %s", line, network, addr)
	}
	return pid
}
