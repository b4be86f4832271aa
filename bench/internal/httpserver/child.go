package httpserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/bench/internal/child"
)

// ChildRole names a helper process that runs the server.
const ChildRole = "http-server"

// How a child listens.
const (
	ListenNet       = "net"       // one net.Listen socket
	ListenReuseport = "reuseport" // one reuseport.Listen socket, to be joined by other processes
	ListenGroup     = "group"     // reuseport.ListenGroup: n sockets in this one process
)

// ChildReady is what a child sends once it serves.
type ChildReady struct {
	Addr string
	Pid  int
}

// ChildDone is what a child sends when it stops.
type ChildDone struct {
	Conns, Requests int64
}

// ChildArgs are the arguments for a child that listens on addr in mode,
// with n sockets for [ListenGroup].
func ChildArgs(mode, addr string, n int) []string {
	return []string{"-listen", mode, "-addr", addr, "-n", fmt.Sprint(n)}
}

// ChildMain is the body of a child started with [ChildArgs].
func ChildMain(args []string) error {
	fs := flag.NewFlagSet(ChildRole, flag.ContinueOnError)
	mode := fs.String("listen", ListenNet, "net, reuseport or group")
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	n := fs.Int("n", 1, "sockets in a group")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lns []net.Listener
	var err error
	switch *mode {
	case ListenNet:
		var ln net.Listener
		ln, err = net.Listen("tcp", *addr)
		lns = []net.Listener{ln}
	case ListenReuseport:
		var ln net.Listener
		ln, err = reuseport.Listen("tcp", *addr)
		lns = []net.Listener{ln}
	case ListenGroup:
		lns, err = reuseport.ListenGroup("tcp", *addr, *n)
	default:
		err = fmt.Errorf("unknown listen mode %q", *mode)
	}
	if err != nil {
		return err
	}

	var counters Counters
	srv := &http.Server{Handler: Handler(&counters), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { served <- srv.Serve(CountingListener{ln, &counters}) }()
	}
	if err := child.Send(ChildReady{Addr: lns[0].Addr().String(), Pid: os.Getpid()}); err != nil {
		return err
	}
	<-child.StopRequested()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	for range lns {
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	return child.Send(ChildDone{Conns: counters.Conns.Load(), Requests: counters.Requests.Load()})
}
