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
// [Listener] does the same for an accept loop of your own: [Listener.Stop]
// ends Accept and [Listener.Wait] waits for the accepted connections to close.
//
// # What a drain cannot save
//
// Keep-alive races: an HTTP/1 connection idle in keep-alive when the drain
// starts is closed, and a request its client sends at that very moment is
// lost. No server can avoid this; HTTP lets clients retry such a request,
// and Go's [http.Transport] does so for idempotent ones. Responses written
// after the drain starts carry "Connection: close", so clients do not reuse
// their connections; a response whose header a handler wrote before the
// drain started does not, and its connection closes right after it.
//
// Slow and silent clients: Shutdown waits for a connection that has sent
// nothing yet, since its request may be on the way. HTTP clients open such
// connections on purpose (browsers preconnect; Go's [http.Transport] keeps
// connections it dialed but did not need), and a client that never sends
// holds the drain until the context ends. Set
// [http.Server.ReadHeaderTimeout] to bound that: net/http closes a
// connection whose request header has not arrived in time.
//
// TLS connections silent for over 5 seconds: turning keep-alives off makes
// net/http close every connection that has been in [http.StateNew] for over
// 5 seconds (golang.org/issue/22682). Shutdown keeps such a connection open
// in cleartext, where its request may still come, but cannot under TLS,
// where net/http closes the *tls.Conn itself; a request sent on it at that
// moment is lost, as in a keep-alive race.
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
