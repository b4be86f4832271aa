// Command webserver is one server with three sockets restarted through a
// single handoff ([handoff.RunAll]): HTTP/1.1 and HTTP/2 over TLS on TCP
// -addr, HTTP/3 on UDP -addr (the same port number), and plain-HTTP
// metrics on TCP -metrics-addr. Every response says which process served
// it, and the TCP responses advertise HTTP/3 with an Alt-Svc header:
//
//	go run ./cmd/webserver -handoff /tmp/web.sock &
//	curl -k https://127.0.0.1:8443/               # hello from pid=N (HTTP/2)
//	curl -k --http3-only https://127.0.0.1:8443/  # the same over HTTP/3
//	curl http://127.0.0.1:9090/metrics            # handoff_took_over_total 0 …
//
// Starting a second copy with the same flags replaces the first: it takes
// the two TCP sockets over and binds a UDP socket of its own on the port,
// and the first stops accepting, drains its HTTP/1.1 and HTTP/2
// connections without losing a request (see the drain package), and
// drains HTTP/3 on its own socket, and exits 0.
//
// A QUIC connection cannot move between processes: its state lives in
// the process that made it. So the UDP Service has OwnSocket set: each
// generation reads a socket of its own, package steer sends each packet
// to the socket of the process that made its connection, and a stopping
// generation drains (no new connection reaches it, GOAWAY, its requests
// answered) while every new connection goes to its successor.
//
// TLS uses -cert and -key, or else a self-signed certificate for localhost
// made at start (clients must skip verification: curl -k).
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/b93f8b21/reuseport/drain"
	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/integrations/internal/selfsigned"
	"github.com/b93f8b21/reuseport/internal/test/servercmd"
)

func main() { command.Main(serve) }

// serve is one generation of the server: it serves until ctx is done or a
// successor serves, then drains and returns.
func serve(ctx context.Context, f servercmd.Flags, logger *log.Logger) error {
	tlsConf, err := loadTLS()
	if err != nil {
		return err
	}
	pid := os.Getpid()
	web := &http.Server{
		Handler:   altSvc(handler(pid)),
		TLSConfig: tlsConf,
		ErrorLog:  logger,
	}
	metrics := &http.Server{Handler: metricsHandler(pid), ErrorLog: logger}
	logger.Print(servercmd.MigrationNote())
	cfg := f.HandoffConfig(logger)
	cfg.OnReady = func(addr net.Addr) { logger.Printf("listening on %s (%s)", addr, addr.Network()) }
	return handoff.RunAll(ctx, cfg,
		handoff.Service{Network: "tcp", Address: f.Addr, Server: newTLSServer(web)},
		// A socket of its own in each generation, steered by connection ID.
		handoff.Service{Network: "udp", Address: f.Addr, PacketServer: newH3Server(tlsConf, handler(pid), logger), OwnSocket: true},
		handoff.Service{Network: "tcp", Address: own.metricsAddr, Server: metrics},
	)
}

// tlsServer serves TLS (HTTP/1.1 and HTTP/2, by ALPN) through a
// drain.Server. RunAll serves a plain *http.Server with Serve, which
// speaks cleartext whatever its TLSConfig says, so a TLS server is passed
// as a drain.Server whose Serve is ServeTLS. Making the drain.Server here
// also keeps the http.Server itself, not a copy: the HTTP/2 support that
// ServeTLS sets up on it is the one its Shutdown sends GOAWAY through.
type tlsServer struct{ *drain.Server }

func newTLSServer(srv *http.Server) tlsServer { return tlsServer{drain.NewServer(srv)} }

// Serve serves TLS with the certificates of the http.Server's TLSConfig.
func (s tlsServer) Serve(ln net.Listener) error { return s.ServeTLS(ln, "", "") }

// altSvc advertises HTTP/3 on the UDP port of the same number as the TCP
// port the request came in on.
func altSvc(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if _, port, err := net.SplitHostPort(a.String()); err == nil {
				w.Header().Set("Alt-Svc", fmt.Sprintf(`h3=":%s"; ma=86400`, port))
			}
		}
		h.ServeHTTP(w, r)
	})
}

// handler answers every request with the pid of the process serving it
// and the protocol it came in by.
func handler(pid int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "hello from pid=%d over %s\n", pid, r.Proto)
		io.Copy(io.Discard, r.Body)
	})
}

// loadTLS reads -cert and -key, or makes a self-signed certificate.
func loadTLS() (*tls.Config, error) {
	if own.certFile == "" {
		c, _, err := selfsigned.New()
		return c, err
	}
	cert, err := tls.LoadX509KeyPair(own.certFile, own.keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}
