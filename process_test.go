package reuseport_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
)

const (
	envServeAddr  = "REUSEPORT_TEST_SERVE_ADDR"
	envServeIndex = "REUSEPORT_TEST_SERVE_INDEX"
)

func init() { helpers["serve"] = serveHelper }

// serveHelper joins the port in envServeAddr, says "ready", and answers
// every connection with its index and pid until its stdin closes, which
// is how it learns that the parent is done or gone.
func serveHelper() int {
	ln, err := reuseport.Listen("tcp", os.Getenv(envServeAddr))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		ln.Close()
	}()
	fmt.Printf("ready %d\n", os.Getpid())
	reply := fmt.Sprintf("%s %d\n", os.Getenv(envServeIndex), os.Getpid())
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return 0
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		io.WriteString(c, reply)
		c.Close()
	}
}

// TestAcrossProcesses checks that separate processes share a port and that
// the kernel spreads connections over all of them.
func TestAcrossProcesses(t *testing.T) {
	requireBalance(t)
	const (
		children = 3
		conns    = 600
	)
	// The parent holds the port while the children join it, so that no
	// other program can take it between picking and joining, then leaves
	// the group so that every connection goes to a child. A listener that
	// closes with an empty accept queue loses nothing.
	first, err := reuseport.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	addr := first.Addr().String()

	pids := make(map[string]int, children) // index -> pid
	for i := range children {
		index := strconv.Itoa(i)
		pids[index] = startServer(t, addr, index)
	}
	first.Close()

	got := make(map[string]int, children)
	d := net.Dialer{Timeout: 5 * time.Second}
	for n := range conns {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d of %d to the children: %v", n+1, conns, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil {
			t.Fatalf("reading the reply to connection %d: %v", n+1, err)
		}
		index, pid, _ := strings.Cut(strings.TrimSpace(line), " ")
		if want, ok := pids[index]; !ok || strconv.Itoa(want) != pid {
			t.Fatalf("connection %d was answered by %q, which is none of the children %v", n+1, line, pids)
		}
		got[index]++
	}
	counts := make([]int64, children)
	for i := range counts {
		counts[i] = int64(got[strconv.Itoa(i)])
	}
	requireFair(t, counts)
}

// startServer runs serveHelper as child index on addr, waits until it
// listens, and returns its pid. At cleanup it closes the child's stdin
// and fails the test unless the child then exits cleanly.
func startServer(t *testing.T, addr, index string) int {
	t.Helper()
	cmd := helperCommand(context.Background(), t, "", "serve", envServeAddr+"="+addr, envServeIndex+"="+index)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder // read only once the child has exited
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting child %s: %v", index, err)
	}
	ready := make(chan string, 1)
	exited := make(chan struct{})
	var waitErr error
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		ready <- line
		// Wait only once the pipe has been read to its end, as os/exec asks.
		io.Copy(io.Discard, r)
		waitErr = cmd.Wait()
		close(exited)
	}()
	kill := func() {
		cmd.Process.Kill()
		<-exited
	}

	select {
	case line := <-ready:
		var pid int
		if _, err := fmt.Sscanf(line, "ready %d\n", &pid); err != nil {
			kill()
			t.Fatalf("child %s said %q instead of ready; stderr:\n%s", index, line, stderr.String())
		}
		t.Cleanup(func() {
			stdin.Close()
			select {
			case <-exited:
				if waitErr != nil {
					t.Errorf("child %s: %v; stderr:\n%s", index, waitErr, stderr.String())
				}
			case <-time.After(10 * time.Second):
				kill()
				t.Errorf("child %s did not exit within 10s of its stdin closing; killed it", index)
			}
		})
		return pid
	case <-time.After(10 * time.Second):
		kill()
		t.Fatalf("child %s did not listen within 10s; stderr:\n%s", index, stderr.String())
		return 0
	}
}
