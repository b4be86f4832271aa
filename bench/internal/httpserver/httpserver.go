// Package httpserver is the minimal HTTP server the throughput benchmarks
// load: every request is answered with a short body naming the process, so
// a client can tell which of several servers answered.
package httpserver

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
)

// Counters count what a server saw, so the benchmark can check that the
// load client did what it claims (one connection per request, or many
// requests per connection).
type Counters struct {
	Conns    atomic.Int64
	Requests atomic.Int64
}

// Handler answers every request with "hello from pid N".
func Handler(c *Counters) http.Handler {
	pid := os.Getpid()
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c.Requests.Add(1)
		fmt.Fprintf(w, "hello from pid %d\n", pid)
	})
}

// CountingListener counts the connections it accepts.
type CountingListener struct {
	net.Listener
	Counters *Counters
}

// Accept is [net.Listener.Accept], counted.
func (l CountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.Counters.Conns.Add(1)
	}
	return c, err
}
