package quicsteer_test

import (
	"context"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/steer"
)

// BenchmarkSockets measures requests a second (one QUIC stream each, on 64
// long-lived connections) served by one socket, and by one socket per CPU
// in one process, each with its own quic-go transport, steered by
// connection ID; and, for comparison, the same sockets left to the
// kernel's hash (steer=false), which serves as well while no socket joins
// or leaves. The clients run in the same process, so on a small machine
// they take much of the CPU the servers would use.
func BenchmarkSockets(b *testing.B) {
	counts := []int{1}
	if n := runtime.NumCPU(); n > 1 {
		counts = append(counts, n)
	}
	for _, n := range counts {
		for _, steered := range []bool{true, false} {
			name := "sockets=" + strconv.Itoa(n) + ",steer=" + strconv.FormatBool(steered)
			b.Run(name, func(b *testing.B) { benchSockets(b, n, steered) })
		}
	}
}

func benchSockets(b *testing.B, n int, steered bool) {
	serverTLS, clientTLS := tlsPair(b)
	lc := reuseport.ListenConfig{}
	pcs, err := lc.ListenPacketGroup(context.Background(), "udp", "127.0.0.1:0", n)
	if err != nil {
		b.Fatal(err)
	}
	g, err := steer.NewGroup(steer.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	for i, pc := range pcs {
		conn := pc.(*net.UDPConn)
		var m *steer.Member
		if steered {
			m = join(b, g, conn)
		}
		serveShard(b, i, conn, m, serverTLS)
	}
	const conns = 64
	clients := make([]*client, conns)
	for i := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := dial(ctx, pcs[0].LocalAddr(), clientTLS)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.close)
		clients[i] = c
	}
	var next, failed atomic.Int64
	b.SetParallelism((conns + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := clients[int(next.Add(1)-1)%conns]
		for pb.Next() {
			if _, err := c.request(5 * time.Second); err != nil {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	if f := failed.Load(); f != 0 {
		b.Fatalf("%d requests failed", f)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
