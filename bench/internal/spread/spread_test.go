package spread_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/bench/internal/child"
	"github.com/b93f8b21/reuseport/bench/internal/spread"
)

// TestMain lets the test binary serve as the children it starts.
func TestMain(m *testing.M) {
	if child.Role() == spread.ChildRole {
		if err := spread.ChildMain(os.Args[1:]); err != nil {
			log.Fatal(err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestGroupInOneProcess(t *testing.T) {
	lns, err := reuseport.ListenGroup("tcp", "127.0.0.1:0", 4)
	if err != nil {
		t.Fatal(err)
	}
	served := serve(t, lns)
	counts, err := spread.Dial(context.Background(), lns[0].Addr().String(), 400, 8, len(lns))
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, counts, 400, true)
	if got := served(); !slices.Equal(got, counts) {
		t.Errorf("servers answered %v, client counted %v", got, counts)
	}
}

func TestOneSocketManyLoops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := serve(t, []net.Listener{ln, ln, ln})
	counts, err := spread.Dial(context.Background(), ln.Addr().String(), 300, 8, 3)
	if err != nil {
		t.Fatal(err)
	}
	// How the loops share is the scheduler's business; only the total
	// is certain.
	checkCounts(t, counts, 300, false)
	if got := served(); !slices.Equal(got, counts) {
		t.Errorf("servers answered %v, client counted %v", got, counts)
	}
}

func TestChildProcesses(t *testing.T) {
	t.Run("reuseport", func(t *testing.T) {
		procs, addr := startChildren(t, 3, nil)
		counts, err := spread.Dial(context.Background(), addr, 300, 8, 3)
		if err != nil {
			t.Fatal(err)
		}
		checkCounts(t, counts, 300, true)
		checkServed(t, procs, counts)
	})
	t.Run("inherited", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := ln.(*net.TCPListener).File()
		ln.Close()
		if err != nil {
			t.Fatal(err)
		}
		procs, addr := startChildren(t, 2, f)
		f.Close()
		counts, err := spread.Dial(context.Background(), addr, 200, 8, 2)
		if err != nil {
			t.Fatal(err)
		}
		checkCounts(t, counts, 200, false)
		checkServed(t, procs, counts)
	})
}

func TestDialRejectsUnknownServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, []net.Listener{nil, ln}) // answers with id 1
	if _, err := spread.Dial(context.Background(), ln.Addr().String(), 10, 2, 1); err == nil {
		t.Fatal("a server answering with id 1 of 1 went unnoticed")
	}
}

func TestResult(t *testing.T) {
	r := spread.Result{Counts: []int{30, 10, 60}}
	if r.Total() != 100 || r.MaxMin() != 6 || !slices.Equal(r.Shares(), []float64{0.3, 0.1, 0.6}) {
		t.Errorf("total %d, max/min %v, shares %v", r.Total(), r.MaxMin(), r.Shares())
	}
	if m := (spread.Result{Counts: []int{5, 0}}).MaxMin(); m < 1e300 {
		t.Errorf("max/min with an empty server = %v, want +Inf", m)
	}
}

// serve runs an accept loop answering with i on each lns[i] that is not
// nil; the returned func closes them and says how many each answered.
func serve(t *testing.T, lns []net.Listener) (stop func() []int) {
	t.Helper()
	type result struct{ id, n int }
	done := make(chan result, len(lns))
	running := 0
	for i, ln := range lns {
		if ln == nil {
			continue
		}
		running++
		go func() {
			n, err := spread.Serve(ln, byte(i))
			if err != nil {
				t.Error(err)
			}
			done <- result{i, n}
		}()
	}
	stopped := false
	served := make([]int, len(lns))
	stop = func() []int {
		if !stopped {
			stopped = true
			for _, ln := range lns {
				if ln != nil {
					ln.Close()
				}
			}
			for range running {
				r := <-done
				served[r.id] += r.n
			}
		}
		return served
	}
	t.Cleanup(func() { stop() })
	return stop
}

func startChildren(t *testing.T, n int, inherited *os.File) ([]*child.Proc, string) {
	t.Helper()
	addr := "127.0.0.1:0"
	var extra []*os.File
	if inherited != nil {
		extra = []*os.File{inherited}
	}
	var procs []*child.Proc
	for id := range n {
		p, err := child.Start(spread.ChildRole, spread.ChildArgs(id, addr, inherited != nil), extra, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Kill)
		var ready spread.ChildReady
		if err := p.Recv(&ready, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
		addr = ready.Addr
	}
	return procs, addr
}

func checkServed(t *testing.T, procs []*child.Proc, counts []int) {
	t.Helper()
	for i, p := range procs {
		var done spread.ChildDone
		if err := p.Stop(&done, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if done.Served != counts[i] {
			t.Errorf("child %d answered %d, client counted %d", i, done.Served, counts[i])
		}
	}
}

// checkCounts wants total connections and, if every, some for every server.
func checkCounts(t *testing.T, counts []int, total int, every bool) {
	t.Helper()
	sum := 0
	for _, c := range counts {
		sum += c
	}
	if sum != total {
		t.Errorf("counts %v add up to %d, want %d", counts, sum, total)
	}
	if every && slices.Min(counts) == 0 {
		t.Errorf("counts %v: a server got nothing", counts)
	}
	t.Log(fmt.Sprint(counts))
}
