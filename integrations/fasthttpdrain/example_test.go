package fasthttpdrain_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/valyala/fasthttp"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/integrations/fasthttpdrain"
)

// A fasthttp server that restarts without losing a request: the next
// generation, started with the same address and Path, takes the socket
// over, and this one drains and returns. A real server takes ctx from
// signal.NotifyContext; here the first request ends it. Run returns
// IdleGrace (2s) later: the drain keeps the client's keep-alive connection
// open that long, in case it sends another request.
func Example() {
	dir, _ := os.MkdirTemp("", "fasthttpdrain") // a directory only this user can write, such as /run/myserver
	defer os.RemoveAll(dir)
	ctx, stop := context.WithCancel(context.Background())
	onReady := func(addr net.Addr) {
		_, body, _ := fasthttp.Get(nil, "http://"+addr.String()+"/")
		fmt.Print(string(body))
		stop()
	}

	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.WriteString("hello\n") }}
	cfg := handoff.RunConfig{Config: handoff.Config{Path: filepath.Join(dir, "w1.sock")}, OnReady: onReady}
	if err := handoff.Run(ctx, cfg, "tcp", "127.0.0.1:0", fasthttpdrain.NewServer(srv)); err != nil {
		log.Fatal(err)
	}
	// Output: hello
}
