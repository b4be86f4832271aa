// Package grpcdrain stops a grpc-go server without losing a connection or
// an RPC, so that [handoff.Run] can restart it losslessly:
//
//	s := grpc.NewServer()
//	healthpb.RegisterHealthServer(s, health.NewServer())
//	cfg := handoff.RunConfig{Config: handoff.Config{Path: path}}
//	err := handoff.Run(ctx, cfg, "tcp", addr, grpcdrain.NewServer(s))
//
// # Why the barrier matters
//
// [grpc.Server.GracefulStop] marks the server stopped before it closes its
// listeners, and the goroutine that takes up each accepted connection
// checks that mark first: a connection accepted just before GracefulStop
// is closed without the server's HTTP/2 preface, and its client fails with
// "error reading server preface" or a broken pipe, though the listening
// socket never closes: 16 RPCs in 12k over 39 restarts in one run of
// cmd/grpcserver's TestRollingHandoffGracefulLosesRPCs (a new connection
// per RPC, a restart every 250ms). [handoff.Run] prevents it: it stops
// accepting first and waits until the server has taken up every
// connection it accepted ([drain.Listener.WaitClaimed]; grpc-go's first
// use of a connection is SetDeadline, right after that check) before it
// calls [Server.Shutdown], so GracefulStop finds every connection past the
// check and drains it.
// Calling GracefulStop directly on a successor's signal, without that
// barrier, keeps the loss.
//
// # What GOAWAY does for clients
//
// GracefulStop drains each connection with GOAWAY: the server says which
// streams it has seen and will answer, finishes those, and closes the
// connection. A grpc-go client sends no new RPC on a connection that has
// sent GOAWAY; it opens a new one, which the kernel hands to the successor
// (or to another process sharing the port). grpc-go's server sends GOAWAY
// twice, the second time after a PING round trip, so that it also answers
// the RPCs the client sent before it saw the first. An RPC the server
// never saw is unprocessed (RFC 9113 §6.8 makes it safe to retry), and
// grpc-go retries it transparently on the new connection, whatever its
// retry policy. So a client that keeps one ClientConn for its whole life
// loses nothing across a restart either; it only moves to the successor.
//
// # What a drain cannot save
//
// Long RPCs: a streaming RPC holds the drain until it ends or the
// shutdown's context does; then [Server.Shutdown] falls back to
// [grpc.Server.Stop], which cancels it and fails it on the client with
// codes.Unavailable. Bound them with the shutdown timeout and a deadline
// of their own, or end them from the server when a successor takes over.
//
// RPCs a client sends on a connection the predecessor has answered with
// GOAWAY reach the successor only if the client honours GOAWAY; a client
// that ignores it sees its connection close.
package grpcdrain
