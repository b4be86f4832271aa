package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/drain"
	"github.com/b93f8b21/reuseport/internal/lameduck"
)

// A PacketServer serves a datagram socket until it is shut down: what
// [RunAll] needs of a UDP server, such as a miekg/dns server, an HTTP/3
// server or a plain read loop. [PacketFuncs] makes one of any server.
//
// ServePacket must return once Shutdown has been called or the socket
// has been closed, with nil, [net.ErrClosed] or [http.ErrServerClosed]
// (any other error is taken for a failure). Shutdown must stop reading, answer the datagrams the
// server has read, and return once that is done, or return ctx.Err() when
// ctx ends first. It must not close the socket itself: RunAll closes its
// own descriptor afterwards, while the successor holds the socket open, so
// that the datagrams not read yet wait there for the successor.
type PacketServer interface {
	ServePacket(net.PacketConn) error
	Shutdown(context.Context) error
}

// PacketFuncs returns a [PacketServer] whose methods call serve and
// shutdown.
func PacketFuncs(serve func(net.PacketConn) error, shutdown func(context.Context) error) PacketServer {
	return packetFuncs{serve, shutdown}
}

type packetFuncs struct {
	serve    func(net.PacketConn) error
	shutdown func(context.Context) error
}

func (f packetFuncs) ServePacket(c net.PacketConn) error { return f.serve(c) }
func (f packetFuncs) Shutdown(ctx context.Context) error { return f.shutdown(ctx) }

// A Service is one socket of a server and what serves it, for [RunAll]:
// a [Server] on a stream network ("tcp", "tcp4", "tcp6") or a
// [PacketServer] on a datagram one ("udp", "udp4", "udp6"). Exactly one
// of Server and PacketServer is set.
type Service struct {
	Network, Address string
	Server           Server
	PacketServer     PacketServer

	// Sequential says that Server speaks a sequential protocol: it
	// answers one request at a time on a connection, each before it reads
	// the next, and reads nothing beyond the request it answers (DNS over
	// TCP with miekg/dns, memcached's text protocol, most line
	// protocols). A connection is then idle whenever the server waits to
	// read and has written since it last read, and the stop uses that:
	// each connection, once idle, is handed to the successor, which serves
	// it as if it had accepted it, so that a request the client sends at
	// that moment waits in the socket for the successor. Without a
	// successor (the last stop, or one that cannot take connections), an
	// idle connection is closed once no bytes wait on it; a request sent
	// after that look is lost, a race no close avoids. Either way the
	// server's own Shutdown comes after, when the connections are gone.
	// Leave it false for HTTP (an *http.Server has its own drain),
	// multiplexed protocols (HTTP/2, gRPC), TLS, and servers that read
	// ahead into a buffer: for those, bytes read and not answered would
	// be lost with the connection.
	Sequential bool

	// OwnSocket, for a PacketServer, makes each generation bind a socket
	// of its own on the port (sharing it through SO_REUSEPORT with
	// cfg.ListenConfig) instead of taking the predecessor's. QUIC needs
	// it: on one shared socket, the packets of the predecessor's
	// connections and of the successor's new ones go to whichever process
	// reads first. With sockets of their own and package steer routing
	// each packet by its connection ID, the predecessor drains (steer's
	// Member.Drain, then GOAWAY) while every new connection goes to the
	// successor; its Shutdown must then Leave the group before RunAll
	// closes the socket.
	OwnSocket bool
}

func (s Service) stream() bool { return s.Server != nil }

// RunAll is [Run] for a server with several sockets: each Service's socket
// comes from the same handoff, and the server has one start, one Ready and
// one stop. A DNS server on UDP and TCP port 53, or HTTP/1.1 and HTTP/2 on
// TCP 443 beside HTTP/3 on UDP 443 and a metrics port, is one RunAll.
//
// It listens on every socket (a failure closes those already open and
// returns), serves each, and calls [Handoff.Ready]. It serves until a
// successor takes over, ctx ends, or any Serve returns on its own (a
// failure of one part stops all parts). Then it stops accepting on every
// listener, stops every PacketServer, and drains every Server as Run
// does, all at once and together bounded by cfg.ShutdownTimeout; last it
// closes its own descriptors of the datagram sockets.
//
// # systemd
//
// When NOTIFY_SOCKET is set (Type=notify or Type=notify-reload), RunAll
// speaks sd_notify(3) itself, with no dependency: READY=1 with MAINPID once
// it serves, STATUS= lines for each step, STOPPING=1 when it stops for
// good, and, with cfg.FDStore, FDSTORE=1 for its sockets. A successor that
// the process started itself (cfg.UpgradeSignal) becomes the unit's main
// process: the predecessor sends MAINPID=<successor> and READY=1 once the
// successor serves, so the default NotifyAccess=main is enough. A
// successor in another unit takes no part in this unit's notifications.
//
// With cfg.UpgradeSignal set to SIGHUP, one unit upgrades in place:
//
//	[Service]
//	Type=notify-reload   # systemd 253 and later; else Type=notify and
//	                     # ExecReload=/bin/kill -HUP $MAINPID
//	ExecStart=/usr/local/bin/app -handoff /run/app/handoff.sock
//	RuntimeDirectory=app
//	RuntimeDirectoryPreserve=yes
//
// On the signal, RunAll sends RELOADING=1 (with MONOTONIC_USEC), starts the
// new executable, and, once it serves, hands it the unit. Under
// Type=notify-reload, `systemctl reload` returns then; under systemd 252's
// Type=notify it returns as soon as the ExecReload command does, so a
// deploy script that must know waits for MainPID to change (the unit in
// examples/systemd does). If the new version fails, this one keeps serving
// and says why in the log and in STATUS=. Under systemd without
// NOTIFY_SOCKET (Type=simple or exec without FileDescriptorStoreMax=, which
// sets it) an upgrade is refused with a log line: systemd would take the
// exit of this process for the end of the service and stop its successor.
//
// # Lifecycle and counts
//
// Every step is logged to cfg.Logger with its duration: where each socket
// came from, how long a takeover took, how many connections were drained
// in how long, how many sockets were stored. [ReadStats] returns the
// process's counts for a metrics system.
func RunAll(ctx context.Context, cfg RunConfig, services ...Service) error {
	if err := cfg.check(services); err != nil {
		return err
	}
	log := logger(cfg.Logger)
	var upgrade chan os.Signal
	if cfg.UpgradeSignal != nil {
		// From the start: the signal's default action (SIGHUP's ends the
		// process) must not apply while the process starts. One that
		// comes early is served once the process serves.
		upgrade = make(chan os.Signal, 1)
		signal.Notify(upgrade, cfg.UpgradeSignal)
		defer signal.Stop(upgrade)
	}
	g, err := startGeneration(ctx, cfg.Config, log, services)
	if err != nil {
		return err
	}
	served := make(chan servedResult, len(g.parts))
	for i, p := range g.parts {
		go func() { served <- servedResult{i, p.serve()} }()
	}

	var errs []error
	stopping := true // tell systemd STOPPING=1 unless a successor in this unit took over
	if err := g.ready(); err != nil {
		// The predecessor goes on serving; what this process accepted
		// meanwhile still gets its answer below.
		errs = append(errs, edgeError(err))
		log.Warn("handoff: taking over from the predecessor failed", "err", err)
		stats.failedTakeovers.Add(1)
	} else {
		for _, p := range g.parts {
			log.Info("handoff: serving", "network", p.network, "addr", p.addr, "origin", p.origin)
		}
		if cfg.OnReady != nil {
			for _, p := range g.parts {
				cfg.OnReady(p.addr)
			}
		}
		stopping = !g.waitForStop(ctx, &cfg, log, served, upgrade)
	}
	timeout := cfg.ShutdownTimeout
	if timeout == 0 {
		timeout = defaultShutdownTimeout
	}
	if stopping {
		g.notify.send("STOPPING=1\nSTATUS=stopping: draining")
	}
	errs = append(errs, g.stop(ctx, timeout, log, served), g.close())
	return errors.Join(errs...)
}

func (cfg *RunConfig) check(services []Service) error {
	if len(services) == 0 {
		return errors.New("handoff: RunAll needs a Service, got none")
	}
	for i, s := range services {
		if (s.Server == nil) == (s.PacketServer == nil) {
			return fmt.Errorf("handoff: Service %d (%s %s) must have a Server or a PacketServer, and not both", i, s.Network, s.Address)
		}
		if s.OwnSocket && s.stream() {
			return fmt.Errorf("handoff: Service %d (%s %s): OwnSocket is for a PacketServer: a listener of its own would reset its queue when it closes", i, s.Network, s.Address)
		}
		if s.stream() != strings.HasPrefix(s.Network, "tcp") || !s.stream() && !strings.HasPrefix(s.Network, "udp") {
			what := "a Server"
			if !s.stream() {
				what = "a PacketServer"
			}
			return fmt.Errorf("handoff: Service %d has %s, which cannot serve network %q", i, what, s.Network)
		}
	}
	switch {
	case cfg.ShutdownTimeout < 0:
		return fmt.Errorf("handoff: RunConfig.ShutdownTimeout must not be negative, got %v", cfg.ShutdownTimeout)
	case cfg.Activation && cfg.Path == "":
		return errors.New("handoff: Config.Activation needs a Config.Path")
	case cfg.UpgradeSignal != nil && cfg.Path == "":
		return errors.New("handoff: RunConfig.UpgradeSignal needs a Config.Path, where the new process finds this one")
	}
	return nil
}

// part is one Service of a generation, listening.
type part struct {
	network string
	addr    net.Addr
	origin  origin

	srv        Server             // stream: served on ll
	ll         *lameduck.Listener //
	sequential bool               //
	info       sockInfo           // ll's socket, as the protocol names it
	merge      *mergeListener     // takes connections a predecessor hands over, or nil
	ps         PacketServer       // datagram: served on pc
	pc         net.PacketConn     //
}

func (p *part) serve() error {
	if p.srv != nil {
		return p.srv.Serve(p.ll)
	}
	return p.ps.ServePacket(p.pc)
}

// closeNow closes the socket of a part that never served.
func (p *part) closeNow() {
	if p.ll != nil {
		p.ll.Close()
	} else {
		p.pc.Close()
	}
}

type servedResult struct {
	part int
	err  error
}

// generation is the sockets RunAll serves on and the handoff they came
// from, if any.
type generation struct {
	parts  []*part
	h      *Handoff // nil without a Path
	notify *notifier
}

// startGeneration starts the handoff, if cfg has a Path, and listens on
// every socket; on failure it closes what it opened.
func startGeneration(ctx context.Context, cfg Config, log *slog.Logger, services []Service) (*generation, error) {
	g := new(generation)
	listen, plainPacket := plainListeners(cfg, log)
	listenPacket := plainPacket
	if cfg.Path != "" {
		cfg.Logger = log
		h, err := start(ctx, cfg, minVersion, maxVersion)
		if err != nil {
			return nil, edgeError(err)
		}
		g.h, g.notify = h, h.notify
		listen, listenPacket = h.Listen, h.ListenPacket
	} else {
		g.notify = newNotifier(log)
	}
	for _, s := range services {
		p := &part{network: s.Network, srv: s.Server, ps: s.PacketServer, sequential: s.Sequential}
		var err error
		if s.stream() {
			var ln net.Listener
			if ln, err = listen(ctx, s.Network, s.Address); err == nil {
				p.addr = ln.Addr()
				if g.h != nil {
					ln = g.adopter(p, ln)
				}
				p.ll = lameduck.NewListener(ln)
				if hs, ok := p.srv.(*http.Server); ok {
					p.srv = httpServer(hs)
				}
			}
		} else {
			lp := listenPacket
			if s.OwnSocket {
				lp = plainPacket
			}
			if p.pc, err = lp(ctx, s.Network, s.Address); err == nil {
				p.addr = p.pc.LocalAddr()
			}
		}
		if err != nil {
			for _, q := range g.parts {
				q.closeNow()
			}
			return nil, errors.Join(err, g.close())
		}
		p.origin = fresh
		if g.h != nil && !s.OwnSocket {
			p.origin = g.h.lastOrigin()
		}
		g.parts = append(g.parts, p)
	}
	return g, nil
}

// httpServer is how RunAll serves an *http.Server: a copy, through
// drain.Server, and over TLS if its TLSConfig has a certificate, as
// http.Server.ListenAndServeTLS would with empty file names.
func httpServer(hs *http.Server) Server {
	d := drain.NewServer(copyServer(hs))
	if c := hs.TLSConfig; c != nil && (len(c.Certificates) > 0 || c.GetCertificate != nil || c.GetConfigForClient != nil) {
		return tlsServer{d}
	}
	return d
}

type tlsServer struct{ *drain.Server }

func (s tlsServer) Serve(ln net.Listener) error { return s.ServeTLS(ln, "", "") }

// adopter makes ln take up, besides the connections it accepts, those the
// predecessor hands over from the same socket (Service.Sequential).
func (g *generation) adopter(p *part, ln net.Listener) net.Listener {
	info, err := listenerInfo(ln)
	m := newMergeListener(ln)
	if err != nil || m == nil {
		return ln
	}
	p.info, p.merge = info, m
	g.h.addReceiver(info, m.push)
	return m
}

// plainListeners returns how RunAll binds without a handoff: sharing the
// port where the OS can, else, logged once, a plain socket, for a single
// copy.
func plainListeners(cfg Config, log *slog.Logger) (func(context.Context, string, string) (net.Listener, error),
	func(context.Context, string, string) (net.PacketConn, error)) {
	lc := cfg.ListenConfig
	if lc == nil {
		lc = new(reuseport.ListenConfig)
	}
	if c := capabilities(); !c.Share {
		var once sync.Once
		warn := func() {
			once.Do(func() {
				log.Warn("handoff: serving a single copy: sockets cannot share a port here, so a second copy would fail to bind and a restart resets the connections queued on the socket", "reason", c.Err)
			})
		}
		var nlc net.ListenConfig
		return func(ctx context.Context, network, address string) (net.Listener, error) {
				warn()
				return logListen(log, network)(nlc.Listen(ctx, network, address))
			}, func(ctx context.Context, network, address string) (net.PacketConn, error) {
				warn()
				pc, err := nlc.ListenPacket(ctx, network, address)
				if err == nil {
					log.Info("handoff: listening", "network", network, "addr", pc.LocalAddr(), "origin", fresh)
				}
				return pc, err
			}
	}
	return func(ctx context.Context, network, address string) (net.Listener, error) {
			return logListen(log, network)(lc.Listen(ctx, network, address))
		}, func(ctx context.Context, network, address string) (net.PacketConn, error) {
			pc, err := lc.ListenPacket(ctx, network, address)
			if err == nil {
				log.Info("handoff: listening", "network", network, "addr", pc.LocalAddr(), "origin", fresh)
			}
			return pc, err
		}
}

// logListen logs a fresh listener as Handoff.Listen logs the sockets it
// returns.
func logListen(log *slog.Logger, network string) func(net.Listener, error) (net.Listener, error) {
	return func(ln net.Listener, err error) (net.Listener, error) {
		if err == nil {
			log.Info("handoff: listening", "network", network, "addr", ln.Addr(), "origin", fresh)
		}
		return ln, err
	}
}

// capabilities is reuseport.Capabilities; tests replace it.
var capabilities = reuseport.Capabilities

// ready calls Handoff.Ready, which tells systemd; without a handoff it
// tells systemd itself.
func (g *generation) ready() error {
	if g.h == nil {
		g.notify.send(fmt.Sprintf("READY=1\nMAINPID=%d\nSTATUS=%s", os.Getpid(), g.status()))
		return nil
	}
	g.h.status = g.status()
	return g.h.readyInner()
}

// status is the STATUS= line of a generation that serves.
func (g *generation) status() string {
	addrs := make([]string, len(g.parts))
	for i, p := range g.parts {
		addrs[i] = p.network + " " + p.addr.String()
	}
	return "serving " + strings.Join(addrs, ", ")
}

// successor is closed once a successor serves; nil (never ready) without
// a handoff.
func (g *generation) successor() <-chan struct{} {
	if g.h == nil {
		return nil
	}
	return g.h.Done()
}

// close stops answering on Path if no successor took over; the sockets
// themselves are closed by stop.
func (g *generation) close() error {
	if g.h == nil {
		return nil
	}
	return g.h.Close()
}

// waitForStop waits for a reason to stop: a Serve returned, ctx ended, or
// a successor took over. Meanwhile it upgrades on each signal from sig. It
// reports whether a successor in the same systemd unit took over, in which
// case the unit goes on and must not hear STOPPING=1.
func (g *generation) waitForStop(ctx context.Context, cfg *RunConfig, log *slog.Logger, served chan servedResult, sig chan os.Signal) bool {
	timeout := cfg.ShutdownTimeout
	if timeout == 0 {
		timeout = defaultShutdownTimeout
	}
	for {
		select {
		case r := <-served:
			served <- r // read again by stop
			p := g.parts[r.part]
			log.Warn("handoff: shutting down: Serve returned", "network", p.network, "addr", p.addr, "err", r.err)
			return false
		case <-ctx.Done():
			log.Info("handoff: shutting down: the context ended", "cause", context.Cause(ctx))
			return false
		case <-g.successor():
			log.Info("handoff: shutting down: a successor took over the sockets")
			return g.h.successorInUnit()
		case s := <-sig:
			if g.upgrade(ctx, log, s, timeout) {
				log.Info("handoff: shutting down: a successor took over the sockets")
				return g.h.successorInUnit()
			}
		}
	}
}

// stop closes every listener, stops every server gracefully within
// timeout, closes the datagram sockets, and collects what Serve returned.
func (g *generation) stop(ctx context.Context, timeout time.Duration, log *slog.Logger, served chan servedResult) error {
	begun := time.Now()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	conns := 0
	for _, p := range g.parts {
		if p.ll != nil {
			if p.merge != nil {
				g.h.addReceiver(p.info, nil)
			}
			p.ll.Close()
			conns += p.ll.Open()
		}
	}
	errs := make([]error, len(g.parts))
	var wg sync.WaitGroup
	for i, p := range g.parts {
		wg.Go(func() { errs[i] = p.shutdown(stopCtx, timeout, g.release(p, log)) })
	}
	wg.Wait()
	results := make([]error, len(g.parts))
	got := make([]bool, len(g.parts))
	n := 0
	for n < len(g.parts) {
		// Each Serve returned when its listener closed, or at the latest
		// when Shutdown did; look before waiting, as stopCtx may have
		// ended.
		var r servedResult
		select {
		case r = <-served:
		default:
			select {
			case r = <-served:
			case <-stopCtx.Done():
				for i, p := range g.parts {
					if !got[i] {
						errs = append(errs, fmt.Errorf("handoff: Serve on %s %v had not returned %v after the socket closed", p.network, p.addr, timeout))
					}
				}
				n = len(g.parts)
				continue
			}
		}
		if !got[r.part] {
			got[r.part], results[r.part] = true, r.err
			n++
		}
	}
	for _, err := range results {
		if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	stats.drained.Add(uint64(conns))
	log.Info("handoff: drained", "conns", conns, "duration", time.Since(begun).Round(time.Microsecond), "ok", err == nil)
	return err
}

// release returns how the stop of a sequential part lets go of an idle
// connection: to the successor if one took over, else closed once no
// bytes wait on it.
func (g *generation) release(p *part, log *slog.Logger) func(net.Conn) bool {
	closeIdle := func(nc net.Conn) bool { return !lameduck.Pending(nc) }
	if g.h == nil || p.info.network == "" {
		return closeIdle
	}
	select {
	case <-g.h.Done():
	default:
		return closeIdle
	}
	return func(nc net.Conn) bool {
		if g.h.passConn(p.info, nc) {
			stats.passed.Add(1)
			return true
		}
		return closeIdle(nc)
	}
}

// shutdown stops one part gracefully: a listener's server once it has
// taken up every connection accepted, a packet server, then its socket.
func (p *part) shutdown(stopCtx context.Context, timeout time.Duration, release func(net.Conn) bool) error {
	var err error
	if p.ll != nil {
		err = p.ll.WaitClaimed(stopCtx)
		if err == nil && p.sequential {
			p.ll.Release(release)
			err = p.ll.Wait(stopCtx)
		}
		if err == nil {
			err = p.srv.Shutdown(stopCtx)
		}
	} else {
		err = p.ps.Shutdown(stopCtx)
	}
	if err != nil {
		err = stopError(stopCtx, timeout, p, err)
	}
	if p.pc != nil {
		// This process's descriptor only: the successor holds the socket
		// and reads what is queued on it.
		if cerr := p.pc.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = errors.Join(err, fmt.Errorf("handoff: closing %s %v: %w", p.network, p.addr, cerr))
		}
	}
	return err
}

// stopError says why the graceful stop failed, after closing the server if
// it can be closed. It speaks of a timeout only if stopCtx's deadline
// passed.
func stopError(stopCtx context.Context, timeout time.Duration, p *part, err error) error {
	where := p.network + " " + p.addr.String()
	if errors.Is(stopCtx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("handoff: graceful stop on %s did not finish within RunConfig.ShutdownTimeout (%v): %w", where, timeout, err)
	} else {
		err = fmt.Errorf("handoff: graceful stop on %s failed: %w", where, err)
	}
	var srv any = p.srv
	if srv == nil {
		srv = p.ps
	}
	if c, ok := srv.(io.Closer); ok {
		if cerr := c.Close(); cerr != nil {
			return errors.Join(err, fmt.Errorf("handoff: closing the server on %s: %w", where, cerr))
		}
	}
	return err
}
