// Package fasthttpdrain stops a [fasthttp.Server] without losing a request,
// keep-alive connections included, so that [handoff.Run] can restart it
// losslessly.
//
// [fasthttp.Server.ShutdownWithContext] closes the listeners, then closes
// every connection idle in keep-alive, again every 100 ms until none is
// left. A request a client sends on such a connection at that moment is
// lost: the client sees the connection close before any response, and no
// client replays a POST. Under a rolling restart with keep-alive clients
// that costs a few requests on every restart. [Server.Shutdown] instead
//
//  1. stops accepting;
//  2. answers every request handled from then on with "Connection: close",
//     after which fasthttp closes the connection, so the client's next
//     request opens a connection to the successor;
//  3. keeps connections idle in keep-alive open, and closes one only once it
//     has been idle for [Server.IdleGrace] with no bytes of a request
//     waiting on it;
//  4. waits for every connection to close, including those whose first
//     request has not arrived yet;
//  5. calls fasthttp.Server.ShutdownWithContext, which finds nothing left
//     to close.
//
// Use it with handoff.Run:
//
//	srv := &fasthttp.Server{Handler: h, ReadTimeout: 10 * time.Second}
//	err := handoff.Run(ctx, cfg, "tcp", ":8080", fasthttpdrain.NewServer(srv))
//
// # What a drain cannot save
//
// HTTP/1.1 gives a server no way to tell a client "send nothing more on this
// connection" except in a response, so a connection that stays idle through
// the whole grace must be closed without one. A client that sends a request
// on it in the instant between the server's last look at the socket and the
// close loses that request (the client sees a reset or EOF). Clients and
// proxies reuse the connection they freed most recently first, so one idle
// for IdleGrace is one they rarely pick; under closed-loop load no
// connection stays idle that long and the close never happens.
//
// A client that connects and sends nothing holds the drain, since its
// request may be on the way: set [fasthttp.Server.ReadTimeout], which
// fasthttp applies to a new connection's first byte. A handler that
// streams holds the drain until it returns. Hijacked connections are
// neither waited for nor closed.
//
// If the context given to Shutdown ends first, Shutdown closes every
// connection still open, as [Server.Close] does, and returns the context's
// error: requests in progress on them are lost.
package fasthttpdrain
