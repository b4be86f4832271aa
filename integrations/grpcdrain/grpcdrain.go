package grpcdrain

import (
	"context"
	"errors"
	"net"
	"sync"

	"google.golang.org/grpc"

	"github.com/b93f8b21/reuseport/handoff"
)

// Server drains a [grpc.Server]: it is the [handoff.Server] that
// [handoff.Run] needs, and an [io.Closer] so that Run can stop it hard
// when the graceful stop runs out of time.
type Server struct {
	s *grpc.Server

	mu       sync.Mutex
	closeErr []error // what closing the listeners returned; Stop drops it
}

var _ handoff.Server = (*Server)(nil)

// NewServer returns a Server that serves and stops s.
func NewServer(s *grpc.Server) *Server { return &Server{s: s} }

// Serve calls [grpc.Server.Serve]. It returns nil if the server was
// stopped first, else the error that made Accept fail: one that wraps
// [net.ErrClosed] once [handoff.Run] has stopped the listener.
func (srv *Server) Serve(ln net.Listener) error {
	return srv.s.Serve(&listener{Listener: ln, srv: srv})
}

// listener keeps the error of Close, which grpc.Server ignores, for
// [Server.Close] to report.
type listener struct {
	net.Listener
	srv *Server
}

func (l *listener) Close() error {
	err := l.Listener.Close()
	// Closed already, by handoff.Run for one: nothing failed.
	if err != nil && !errors.Is(err, net.ErrClosed) {
		l.srv.mu.Lock()
		l.srv.closeErr = append(l.srv.closeErr, err)
		l.srv.mu.Unlock()
	}
	return err
}

// Shutdown stops the server gracefully with [grpc.Server.GracefulStop]: it
// stops accepting, sends GOAWAY on every connection, and waits for the RPCs
// in progress to finish. If ctx ends first, Shutdown stops the server with
// [grpc.Server.Stop], which closes every connection and cancels the RPCs
// still running, and returns ctx.Err().
//
// Called on its own, Shutdown drops the connections accepted but not yet
// taken up by the server (see the package documentation); [handoff.Run]
// calls it only once there are none.
func (srv *Server) Shutdown(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() {
		srv.s.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		// Stop ends the GracefulStop above too, but for handlers that
		// ignore their cancelled context, which GracefulStop waits for.
		srv.s.Stop()
		return ctx.Err()
	}
}

// Close stops the server at once with [grpc.Server.Stop]: it closes the
// listeners and every connection, and cancels the RPCs in progress. It
// returns the errors of closing the listeners Serve was given (one already
// closed is no error), which Stop itself drops.
func (srv *Server) Close() error {
	srv.s.Stop()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	err := errors.Join(srv.closeErr...)
	srv.closeErr = nil
	return err
}
