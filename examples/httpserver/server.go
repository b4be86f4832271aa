package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"
)

// newServer returns the server every copy runs. It answers every request
// with the pid of the process that served it, which is how a client sees
// the kernel spreading connections across processes.
func newServer(pid int, logger *log.Logger) *http.Server {
	body := fmt.Sprintf("hello from pid=%d\n", pid)
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, body)
		}),
		// A client that opens a connection and sends nothing must not
		// hold it, and so the graceful shutdown, for the whole timeout.
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          logger,
	}
}

// serve runs srv on ln until ctx is done, then shuts it down: ln closes at
// once, requests in flight get up to grace to finish, and connections still
// open after that are cut.
func serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err // Serve returns early only when Accept fails for good
	case <-ctx.Done():
	}
	srv.ErrorLog.Printf("shutting down: %v", context.Cause(ctx))
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		srv.Close()
		err = fmt.Errorf("requests still running after -shutdown-timeout %v were cut off: %w", grace, err)
	}
	<-served // http.ErrServerClosed, since Shutdown closed ln
	return err
}
