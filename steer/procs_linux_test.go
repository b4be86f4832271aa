package steer

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
	"github.com/b93f8b21/reuseport/internal/test/testenv"
)

// A member process is this test binary run again with envMember set: it
// joins the port in envAddr (a new one if empty), reconciling every
// envInterval, answers every datagram that is not a probe with its member
// id, prints "ready PORT ID UID", and obeys "drain" and "leave" on stdin
// until stdin closes.
const (
	envMember   = "STEER_TEST_MEMBER"
	envAddr     = "STEER_TEST_ADDR"
	envInterval = "STEER_TEST_INTERVAL"
)

// nobody is the unprivileged uid and gid member processes run as.
const nobody = 65534

func TestMain(m *testing.M) {
	if os.Getenv(envMember) != "" {
		time.AfterFunc(time.Minute, func() { os.Exit(3) })
		if err := memberProcess(); err != nil {
			fmt.Fprintln(os.Stderr, "member:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func memberProcess() error {
	addr := os.Getenv(envAddr)
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	interval, err := time.ParseDuration(os.Getenv(envInterval))
	if err != nil {
		return err
	}
	pc, err := reuseport.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	conn := pc.(*net.UDPConn)
	g, err := NewGroup(Config{ReconcileInterval: interval, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	m, err := g.Join(conn)
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 2048)
		id := binary.BigEndian.AppendUint32(nil, m.id)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if !m.HandleControl(buf[:n], from, conn.WriteTo) {
				conn.WriteTo(id, from)
			}
		}
	}()
	fmt.Printf("ready %d %08x %d\n", conn.LocalAddr().(*net.UDPAddr).Port, m.id, os.Getuid())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "drain":
			err = m.Drain()
		case "leave":
			if err = m.Leave(); err == nil {
				err = conn.Close()
			}
		}
		if err != nil {
			return err
		}
		fmt.Println("done", in.Text())
	}
	return nil
}

// A member is a member process seen from the test.
type member struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	port  int
	id    uint32
}

func startMember(t *testing.T, exe, addr string, interval time.Duration) *member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), envMember+"=1", envAddr+"="+addr, envInterval+"="+interval.String(),
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Stderr = testWriter{t}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: nobody, Gid: nobody},
		Pdeathsig:  syscall.SIGKILL,
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a member as uid %d: %v", nobody, err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	m := &member{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	var uid int
	var id string
	if !m.out.Scan() {
		t.Fatalf("member exited before it was ready")
	}
	if _, err := fmt.Sscanf(m.out.Text(), "ready %d %s %d", &m.port, &id, &uid); err != nil {
		t.Fatalf("member said %q: %v", m.out.Text(), err)
	}
	if uid != nobody {
		t.Fatalf("member runs as uid %d, want %d", uid, nobody)
	}
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 4 {
		t.Fatalf("member id %q", id)
	}
	m.id = binary.BigEndian.Uint32(b)
	return m
}

// do sends a command to the member and waits until it is done.
func (m *member) do(t *testing.T, cmd string) {
	t.Helper()
	if _, err := fmt.Fprintln(m.stdin, cmd); err != nil {
		t.Fatal(err)
	}
	if !m.out.Scan() || m.out.Text() != "done "+cmd {
		t.Fatalf("member %08x: %q did not finish (%q)", m.id, cmd, m.out.Text())
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("member: %s", strings.TrimSpace(string(b)))
	return len(b), nil
}

// clients are UDP 4-tuples to the group, each asking which member gets a
// datagram.
type clients struct {
	t  *testing.T
	cs []*net.UDPConn
	k  key // the key the members derive for the port (no Config.Key)
}

func newClients(t *testing.T, port, n int) *clients {
	t.Helper()
	k, err := hostKey(port)
	if err != nil {
		t.Fatal(err)
	}
	c := &clients{t: t, k: k}
	t.Cleanup(func() {
		for _, x := range c.cs {
			x.Close()
		}
	})
	for range n {
		x, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			t.Fatal(err)
		}
		c.cs = append(c.cs, x)
	}
	return c
}

// ask sends p from client i and returns the id of the member that answered.
func (c *clients) ask(i int, p []byte) uint32 {
	c.t.Helper()
	x := c.cs[i]
	if _, err := x.Write(p); err != nil {
		c.t.Fatal(err)
	}
	x.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [4]byte
	if n, err := x.Read(b[:]); err != nil || n != 4 {
		c.t.Fatalf("client %d got no answer (%d bytes): %v", i, n, err)
	}
	return binary.BigEndian.Uint32(b[:])
}

// misrouted sends a short-header and a Handshake packet with a connection
// ID of each member's from every client and counts those another member
// answered.
func (c *clients) misrouted(ids ...uint32) (bad, of int) {
	c.t.Helper()
	for i := range c.cs {
		for _, id := range ids {
			cid := newCID(c.k, id, defaultCIDLen)
			for _, p := range [][]byte{shortHeader(cid), handshake(cid)} {
				of++
				if c.ask(i, p) != id {
					bad++
				}
			}
		}
	}
	return bad, of
}

// firstFlights counts the members that answered each client's Initial.
func (c *clients) firstFlights() map[uint32]int {
	c.t.Helper()
	got := map[uint32]int{}
	for i := range c.cs {
		dcid := binary.BigEndian.AppendUint64(nil, uint64(i+1)*0x9e3779b97f4a7c15)
		got[c.ask(i, initial(dcid))]++
	}
	return got
}

// TestMembersInOtherProcesses runs each member in a process of its own, as
// an unprivileged user, so that only probing can teach a process about the
// others: the steering holds as members join, drain and leave, and heals
// within a reconcile interval after one is killed. The control, with the
// periodic reconcile off, shows the kill moving connections for good.
func TestMembersInOtherProcesses(t *testing.T) {
	if nstest.Isolate(t) {
		return
	}
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, testenv.RequireNetns, "needs root to run member processes as uid %d (running as uid %d)", nobody, os.Geteuid())
	}
	RequireSteering(t)
	exe := testenv.ShareTestBinary(t)
	const interval = 300 * time.Millisecond
	for _, reconcile := range []bool{true, false} {
		name, every := "reconciling", interval
		if !reconcile {
			name, every = "control without reconcile", -1
		}
		t.Run(name, func(t *testing.T) {
			// Changes in different processes come at least two reconcile
			// intervals apart, as the package's Limits ask: each process's
			// periodic reconcile has then seen one change before the next
			// one, so it never puts back a table from before it.
			settle := func() { time.Sleep(2 * interval) }
			a := startMember(t, exe, "", every)
			addr := fmt.Sprintf("127.0.0.1:%d", a.port)
			settle()
			b := startMember(t, exe, addr, every)
			settle()
			c := startMember(t, exe, addr, every)
			cl := newClients(t, a.port, 60)

			// c's Join learnt a and b by probing them.
			if bad, of := cl.misrouted(a.id, b.id, c.id); bad != 0 {
				t.Fatalf("%d of %d packets reached another member", bad, of)
			}
			requireMembers(t, cl.firstFlights(), a.id, b.id, c.id)

			settle()
			b.do(t, "drain")
			got := cl.firstFlights()
			if got[b.id] != 0 {
				t.Errorf("%d first flights reached the draining member", got[b.id])
			}
			requireMembers(t, got, a.id, c.id)
			if bad, of := cl.misrouted(a.id, b.id, c.id); bad != 0 {
				t.Errorf("with b draining, %d of %d packets reached another member", bad, of)
			}
			settle()
			b.do(t, "leave")
			if bad, of := cl.misrouted(a.id, c.id); bad != 0 {
				t.Errorf("after b left, %d of %d packets reached another member", bad, of)
			}

			// A crash: the kernel moves c, the last socket, into a's slot;
			// the program still steers c's connections to the slot c had.
			settle()
			d := startMember(t, exe, addr, every)
			if bad, of := cl.misrouted(c.id, d.id); bad != 0 {
				t.Fatalf("after d joined, %d of %d packets reached another member", bad, of)
			}
			a.cmd.Process.Signal(syscall.SIGKILL)
			a.cmd.Wait()
			killed := time.Now()
			deadline := killed.Add(10 * interval)
			var bad, of int
			for {
				bad, of = cl.misrouted(c.id, d.id)
				if bad == 0 || time.Now().After(deadline) {
					break
				}
				t.Logf("%v after the kill: %d of %d packets reach another member", time.Since(killed).Round(time.Millisecond), bad, of)
				time.Sleep(interval / 10)
			}
			switch {
			case reconcile && bad != 0:
				t.Errorf("%v after a member was killed, %d of %d packets still reach another member", time.Since(killed).Round(time.Millisecond), bad, of)
			case reconcile:
				t.Logf("healed %v after the kill (reconcile interval %v)", time.Since(killed).Round(time.Millisecond), interval)
			case bad == 0:
				t.Errorf("control: no packet reached another member after the kill; the test cannot see a stale program")
			default:
				t.Logf("control: %v after the kill, %d of %d packets still reach another member", time.Since(killed).Round(time.Millisecond), bad, of)
			}
		})
	}
}

// requireMembers checks that each of ids, and only they, answered some
// first flights.
func requireMembers(t *testing.T, got map[uint32]int, ids ...uint32) {
	t.Helper()
	if len(got) != len(ids) {
		t.Errorf("first flights reached %d members, want %d: %v", len(got), len(ids), got)
	}
	for _, id := range ids {
		if got[id] == 0 {
			t.Errorf("no first flight reached member %08x: %v", id, got)
		}
	}
}
