package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/b93f8b21/reuseport/drain"
)

// httpServer is what both shutdown modes offer: *drain.Server, which
// answers every connection it accepted, and the bare *http.Server, whose
// Shutdown drops a connection whose request it reads after the shutdown
// began.
type httpServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// newServer returns the server every copy runs. It answers every request
// with the pid of the process that served it, which is how a client sees
// the kernel spreading connections across processes.
func newServer(pid int, logger *log.Logger, shutdown string) httpServer {
	body := fmt.Sprintf("hello from pid=%d\n", pid)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, body)
		}),
		// A client that opens a connection and sends nothing must not
		// hold it, and so the drain, for the whole timeout.
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          logger,
	}
	if shutdown == shutdownStdlib {
		return srv
	}
	return drain.NewServer(srv)
}

// serve runs srv on ln, calls ready once it accepts (a predecessor stops
// accepting then) and announce after that, and serves until ctx is done or
// successor is closed. It then stops accepting, gives the connections it
// accepted up to grace to be answered, and cuts those still open.
func serve(ctx context.Context, srv httpServer, ln net.Listener, ready func() error, announce func(), successor <-chan struct{}, grace time.Duration, logger *log.Logger) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var why string
	readyErr := ready()
	if readyErr != nil {
		// The predecessor goes on serving; what this process accepted
		// meanwhile still gets its answer below.
		why = fmt.Sprintf("taking over from the predecessor failed: %v", readyErr)
	} else {
		announce()
		select {
		case err := <-served:
			return err // Serve returns early only when Accept fails for good
		case <-ctx.Done():
			why = context.Cause(ctx).Error()
		case <-successor:
			why = "a successor took over the socket"
		}
	}
	logger.Printf("shutting down: %s", why)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		srv.Close()
		err = fmt.Errorf("connections still open after -shutdown-timeout %v were cut off: %w", grace, err)
	}
	<-served // http.ErrServerClosed, since Shutdown closed ln
	if readyErr != nil {
		return readyErr
	}
	return err
}
