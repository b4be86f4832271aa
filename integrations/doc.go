// Package integrations holds what ties reuseport's lossless restarts to
// servers outside the standard library: grpc-go and fasthttp. It is a module
// of its own, so that the reuseport module itself needs nothing beyond
// golang.org/x/sys.
//
//   - [github.com/b93f8b21/reuseport/integrations/grpcdrain] drains a
//     *grpc.Server for [github.com/b93f8b21/reuseport/handoff.Run].
//   - [github.com/b93f8b21/reuseport/integrations/fasthttpdrain] drains a
//     *fasthttp.Server the same way, keep-alive connections included.
//   - cmd/grpcserver and cmd/fasthttpserver are runnable servers built on
//     them, with the flags of examples/httpserver.
package integrations
