package handoff

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"reflect"
	"time"
)

// RunConfig configures [Run]: the [Config] of its handoff, and what only
// Run uses. Its zero value is valid: no handoff, only ctx stops the server.
type RunConfig struct {
	Config

	// ShutdownTimeout bounds the graceful stop of the server. Zero means
	// 30 seconds.
	ShutdownTimeout time.Duration

	// OnReady, if set, is called once the server serves and the
	// predecessor, if any, has been told to stop, with the local address
	// it serves on: the moment to tell a supervisor that the process is
	// ready. Run tells systemd itself (see [RunAll]). [RunAll] calls it
	// once for each Service, in order.
	OnReady func(net.Addr)

	// UpgradeSignal, if not nil, makes the process upgrade itself in
	// place when it receives that signal, as tableflip does: it starts
	// its own executable, as the file now on disk, with the same
	// arguments and environment, as its successor on Config.Path; waits
	// until the successor serves, at most ShutdownTimeout; then drains
	// and returns nil. If the successor fails, this process kills it if
	// it still runs, logs why, and goes on serving. Under systemd, use
	// syscall.SIGHUP with Type=notify-reload, or Type=notify and
	// ExecReload=/bin/kill -HUP $MAINPID (see RunAll). It needs a Path.
	UpgradeSignal os.Signal
}

const defaultShutdownTimeout = 30 * time.Second

// A Server serves the connections it accepts from a listener until it is
// shut down: the two things [Run] needs of a server. [*http.Server] and
// [*drain.Server] are Servers; [Funcs] makes one of any other server.
//
// Serve must return once the listener's Accept fails with an error that
// wraps [net.ErrClosed], or once Shutdown has been called. Shutdown must
// answer the connections Serve accepted and return once they are done, or
// return ctx.Err() when ctx ends first. What it does with a connection idle
// between requests decides whether a keep-alive client loses a request
// (see the drain package). If the Server also has a Close method (it is an
// [io.Closer]), Run calls it when Shutdown fails.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Funcs returns a [Server] whose Serve and Shutdown methods call serve and
// shutdown. For a grpc-go server s, for example:
//
//	handoff.Funcs(s.Serve, func(ctx context.Context) error {
//		stopped := make(chan struct{})
//		go func() { s.GracefulStop(); close(stopped) }()
//		select {
//		case <-stopped:
//			return nil
//		case <-ctx.Done():
//			s.Stop()
//			return ctx.Err()
//		}
//	})
func Funcs(serve func(net.Listener) error, shutdown func(context.Context) error) Server {
	return funcs{serve, shutdown}
}

type funcs struct {
	serve    func(net.Listener) error
	shutdown func(context.Context) error
}

func (f funcs) Serve(ln net.Listener) error        { return f.serve(ln) }
func (f funcs) Shutdown(ctx context.Context) error { return f.shutdown(ctx) }

// Run is the whole life of one generation of a server that restarts without
// losing a connection. It listens on network and address (an inherited,
// activated or fresh socket, as [Handoff.Listen] chooses), serves srv on it,
// and calls [Handoff.Ready], which tells the predecessor on cfg.Path, if
// any, to stop. It serves until a successor takes the socket over or ctx
// ends, then:
//
//  1. stops accepting, closing only its own descriptor, so that the
//     connections queued on the socket go to the successor;
//  2. waits until srv has taken up every connection it accepted (see
//     [drain.Listener.WaitClaimed]), so that srv's graceful stop cannot
//     drop one it had not registered yet;
//  3. calls srv.Shutdown, bounded by cfg.ShutdownTimeout, and srv.Close
//     if that fails and srv has one.
//
// Run returns nil once srv has stopped gracefully, whichever of the two
// stopped it. It returns an error if it could not listen, if Ready failed
// (the predecessor then goes on serving), if srv.Serve failed on its own,
// if srv.Shutdown failed (the error wraps Shutdown's, and speaks of a
// timeout only if cfg.ShutdownTimeout expired), or if the handoff could
// not be closed.
//
// An [*http.Server] is served through [drain.NewServer], whose drain
// answers every request on every connection it accepted, keep-alive ones
// included; [http.Server.Shutdown] alone does not. It is served over TLS
// (with HTTP/2 unless TLSConfig.NextProtos says otherwise) when its
// TLSConfig has Certificates, GetCertificate or GetConfigForClient, as
// [http.Server.ServeTLS] with empty file names would. This is why a web
// framework's server is passed as its *http.Server (echo's e.Server, or
// the http.Server gin's or chi's router is served by), not through
// [Funcs] with the framework's own Shutdown, which is plain
// http.Server.Shutdown. Run never writes to the caller's http.Server: it
// serves a new one with the same exported fields, so the same *http.Server
// may be passed to Run again. A copy cannot carry what http.Server keeps
// unexported: functions registered with [http.Server.RegisterOnShutdown]
// (golang.org/x/net/http2's ConfigureServer registers one) are not called;
// wrap the server in [drain.NewServer] yourself to keep them, and pass the
// [*drain.Server].
//
// With an empty cfg.Path there is no handoff: Run binds a fresh socket
// with cfg.ListenConfig and only ctx stops it. Where sockets cannot share
// a port (Windows, or a kernel that refuses SO_REUSEPORT), it then binds a
// plain socket, logs that a second copy cannot share the port, and serves
// a single copy.
//
// Run is [RunAll] with one [Service]; see RunAll for systemd, upgrades on
// a signal, and servers with several sockets.
func Run(ctx context.Context, cfg RunConfig, network, address string, srv Server) error {
	if srv == nil {
		return errors.New("handoff: Run needs a Server, got nil")
	}
	return RunAll(ctx, cfg, Service{Network: network, Address: address, Server: srv})
}

// copyServer returns a new http.Server with the exported fields of hs.
// Reflection copies the fields a later Go release adds, too.
func copyServer(hs *http.Server) *http.Server {
	c := new(http.Server)
	src, dst := reflect.ValueOf(hs).Elem(), reflect.ValueOf(c).Elem()
	for i := range src.NumField() {
		if src.Type().Field(i).IsExported() {
			dst.Field(i).Set(src.Field(i))
		}
	}
	return c
}
