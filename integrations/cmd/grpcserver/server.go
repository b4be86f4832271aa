package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/handoff"
)

// newServer returns the server every copy runs: the standard health
// service, answering SERVING for as long as the process serves (its port
// does not go away when it restarts), and the process's pid in the "pid"
// header of every response.
func newServer(pid int) *grpc.Server {
	header := metadata.Pairs("pid", strconv.Itoa(pid))
	s := grpc.NewServer(
		// A client that connects and never sends its preface must not
		// hold the drain for grpc-go's default of 120s.
		grpc.ConnectionTimeout(5*time.Second),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			grpc.SetHeader(ctx, header)
			return handler(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			ss.SetHeader(header)
			return handler(srv, ss)
		}),
	)
	healthpb.RegisterHealthServer(s, health.NewServer())
	return s
}

// runGraceful is how a grpc-go server usually stops, without handoff.Run:
// GracefulStop as soon as a successor serves (or ctx ends), and Stop if
// that takes longer than cfg.ShutdownTimeout. GracefulStop marks the
// server stopped before it closes the listener, and a connection accepted
// in between, or whose goroutine had not started yet, is closed without
// an answer: this is what -shutdown graceful shows.
func runGraceful(ctx context.Context, cfg handoff.RunConfig, addr string, s *grpc.Server) error {
	log := cfg.Logger
	var (
		ln        net.Listener
		successor <-chan struct{}
		err       error
	)
	served := make(chan error, 1)
	if cfg.Path == "" {
		if ln, err = reuseport.Listen("tcp", addr); err != nil {
			return err
		}
		log.Info("listening", "network", "tcp", "addr", ln.Addr(), "origin", "fresh")
		go func() { served <- s.Serve(ln) }()
	} else {
		h, err := handoff.Start(ctx, cfg.Config)
		if err != nil {
			return err
		}
		defer h.Close()
		// h logs where the socket came from.
		if ln, err = h.Listen(ctx, "tcp", addr); err != nil {
			return err
		}
		go func() { served <- s.Serve(ln) }()
		if err := h.Ready(); err != nil {
			s.GracefulStop()
			return err
		}
		successor = h.Done()
	}
	cfg.OnReady(ln.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx))
	case <-successor:
		log.Info("shutting down: a successor took over the socket")
	}
	stopped := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.Stop()
		err = fmt.Errorf("GracefulStop did not finish within %v; connections still open were closed", cfg.ShutdownTimeout)
	}
	if serr := <-served; serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}
