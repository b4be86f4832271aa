// Package integrations holds what ties reuseport's lossless restarts to
// servers outside the standard library: grpc-go, fasthttp and quic-go. It is
// a module of its own, so that the reuseport module itself needs nothing
// beyond golang.org/x/sys.
//
//   - [github.com/b93f8b21/reuseport/integrations/grpcdrain] drains a
//     *grpc.Server for [github.com/b93f8b21/reuseport/handoff.Run].
//   - [github.com/b93f8b21/reuseport/integrations/fasthttpdrain] drains a
//     *fasthttp.Server the same way, keep-alive connections included.
//   - [github.com/b93f8b21/reuseport/integrations/quicsteer] runs a quic-go
//     transport on a socket of a [github.com/b93f8b21/reuseport/steer.Group],
//     so that the copies of a QUIC server can join, leave and restart
//     without breaking each other's connections.
//   - cmd/grpcserver, cmd/fasthttpserver and cmd/quicserver (HTTP/3) are
//     runnable servers built on them, with the flags of examples/httpserver.
package integrations
