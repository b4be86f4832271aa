// Package drain stops a server without losing a connection it has accepted,
// for net/http servers and for plain accept loops.
//
// A lossless restart hands the listening sockets to a successor, which then
// accepts from the same sockets. The predecessor must stop accepting, give
// every connection it already accepted its response, and exit. It must not
// call shutdown(2) on a listening socket, which would stop it for the
// successor too; closing its own descriptor is harmless.
//
// [http.Server.Shutdown] is not enough for that: it answers the requests it
// has already read, but a connection it accepted whose request is read after
// the shutdown began is closed without a response, and the client sees EOF
// or a reset. Under load a restart loses a few such requests every time.
// [Server] drains an http.Server so that those requests are answered too:
//
//	d := drain.NewServer(&http.Server{Handler: h})
//	go d.Serve(ln)
//	// … once a successor is accepting from the same socket:
//	err := d.Shutdown(ctx)
//
// [Listener] does the same for an accept loop of your own: [Listener.Close]
// ends Accept and [Listener.Wait] waits for the accepted connections to close.
//
// # Keep-alive
//
// Proxies (nginx, Envoy, [net/http/httputil.ReverseProxy]) and browsers
// keep connections open between requests and send the next request on one
// whenever they like; they also open connections ahead of need. Once
// shutting down, [http.Server.Shutdown] closes such idle connections at
// once, and a request a client sends on one at that moment is lost: no
// proxy replays a POST. Server.Shutdown keeps them open instead, answers
// the next request on each with "Connection: close", and closes one only
// when it has stayed quiet for [Server.IdleGrace] (2 seconds unless set)
// and no bytes of a request are waiting on it. Proxies pick the connection
// freed most recently first, so a connection idle that long is one they
// rarely pick; the one left to lose is a request sent on it in the instant
// between the close and the client seeing it, before the client's next
// look at the socket. TestNginxKeepAliveHandoffLosesNothing in
// examples/httpserver checks this behind nginx with upstream keepalive,
// against a control that closes idle connections at once, as
// http.Server.Shutdown does; BENCHMARKS.md has the figures and the command.
//
// A response whose handler began before the drain does not say
// "Connection: close" (its header may already be written); its connection
// is closed after IdleGrace like any idle one, or answers one more request.
//
// # What a drain cannot save
//
// Slow clients: Shutdown waits for a connection that has sent part of a
// request, or finished a TLS handshake and sent nothing since, since its
// request may be on the way, until the context ends. Set
// [http.Server.ReadHeaderTimeout] to bound that: net/http closes a
// connection whose request header has not arrived in time. A cleartext
// connection that has sent nothing at all is quiet, and closed after
// IdleGrace like an idle one.
//
// Long requests: a handler that streams (server-sent events, long polling)
// holds the drain until it returns or the context ends, as it holds
// [http.Server.Shutdown].
//
// Hijacked connections (WebSocket) are not waited for or closed, as with
// http.Server. Drain them yourself, for example from a function given to
// [http.Server.RegisterOnShutdown], which runs once the drain has waited.
//
// HTTP/2 has a lossless drain of its own, GOAWAY, which tells the client
// which streams the server has seen; the client retries the others on a new
// connection (RFC 9113 §6.8), which reaches the successor. So Shutdown waits
// for an HTTP/2 connection only until its preface is read (for TLS, until the
// handshake has chosen "h2"), then http.Server.Shutdown sends GOAWAY and
// waits for the streams in progress. A client that does not retry may lose a
// request sent just as GOAWAY is. Upgrades to h2c from HTTP/1 (the
// golang.org/x/net/http2/h2c handler) hijack the connection: see above.
//
// Unix sockets: closing a [*net.UnixListener] made by [net.Listen] removes
// its socket file; call SetUnlinkOnClose(false) before serving a socket that
// another process will keep serving.
package drain
