package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
)

// newServer returns the server every copy runs. It answers every request
// with the pid and id of the process that served it, which is how a client
// sees the kernel spreading connections across processes. handoff.Run drains an
// *http.Server without losing a request; -shutdown stdlib hides it behind
// handoff.Funcs, so that it stops with plain http.Server.Shutdown instead.
func newServer(pid int, id string, logger *log.Logger, shutdown string) handoff.Server {
	body := fmt.Sprintf("hello from pid=%d id=%s\n", pid, id)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Read the body a client sent (a POST from a proxy), so that
			// the connection can serve the next request.
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, body)
		}),
		// A client that opens a connection and sends nothing must not
		// hold it, and so the drain, for the whole timeout.
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          logger,
	}
	if shutdown == shutdownStdlib {
		return handoff.Funcs(srv.Serve, srv.Shutdown)
	}
	return srv
}
