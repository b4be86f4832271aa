package main

import (
	"fmt"
	"log"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/integrations/fasthttpdrain"
)

// newServer returns the server every copy runs. It answers every request
// with the pid of the process that served it. With -shutdown native it is
// fasthttp's own Serve and ShutdownWithContext behind handoff.Funcs; else
// fasthttpdrain drains it.
func newServer(pid int, logger *log.Logger, shutdown string) handoff.Server {
	body := fmt.Sprintf("hello from pid=%d\n", pid)
	srv := &fasthttp.Server{
		// fasthttp has read the whole request, POST body included,
		// before it calls the handler.
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain; charset=utf-8")
			ctx.WriteString(body)
		},
		// A client that connects and sends nothing must not hold the
		// drain for the whole timeout; fasthttp applies ReadTimeout to
		// the first byte of a new connection.
		ReadTimeout: 5 * time.Second,
		// Without IdleTimeout, ReadTimeout would close keep-alive
		// connections idle for 5s, racing clients that reuse them; a
		// client's pool keeps them idle longer (fasthttp's 10s).
		IdleTimeout: 2 * time.Minute,
		// The best fasthttp does on its own: responses say
		// "Connection: close" while ShutdownWithContext runs. The drain
		// does not depend on it.
		CloseOnShutdown: true,
		Logger:          logger,
	}
	if shutdown == shutdownNative {
		return handoff.Funcs(srv.Serve, srv.ShutdownWithContext)
	}
	return fasthttpdrain.NewServer(srv)
}
