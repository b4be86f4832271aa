//go:build darwin || freebsd || linux

package handoff_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/b93f8b21/reuseport/drain"
	"github.com/b93f8b21/reuseport/handoff"
)

// Two generations of an HTTP server, played here by one process: the
// second inherits the listening socket, the first drains and its Run
// returns, and requests go on being answered on the same port.
func Example() {
	dir, err := os.MkdirTemp("", "handoff-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := handoff.RunConfig{Config: handoff.Config{Path: filepath.Join(dir, "server.sock")}}

	run := func(name string) (url <-chan string, done <-chan error) {
		u, d := make(chan string, 1), make(chan error, 1)
		cfg := cfg
		cfg.OnReady = func(addr net.Addr) {
			fmt.Printf("%s: serving\n", name)
			u <- "http://" + addr.String()
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, name)
		})}
		// Port 0 takes an inherited socket whatever port it has.
		go func() { d <- handoff.Run(context.Background(), cfg, "tcp", "127.0.0.1:0", srv) }()
		return u, d
	}

	url, firstDone := run("first")
	first := <-url
	url, secondDone := run("second")
	second := <-url
	fmt.Println("first returned:", <-firstDone)
	fmt.Println("same address:", first == second)

	resp, err := http.Get(second)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("answered by:", string(body))
	_ = secondDone // in a real server, the second runs until its own successor
	// The second asked for port 0 and got the first's port: it inherited
	// the socket.
	// Output:
	// first: serving
	// second: serving
	// first returned: <nil>
	// same address: true
	// answered by: second
}

// The main function of a server whose restarts lose nothing: the same code
// runs at the first start and at every restart, whoever starts the new
// process. It returns once a successor serves (or on SIGTERM), after
// answering every request it accepted.
func ExampleRun() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv := &http.Server{Handler: http.DefaultServeMux}
	cfg := handoff.RunConfig{Config: handoff.Config{
		Path:   filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "myserver.sock"),
		Logger: slog.Default(),
	}}
	if err := handoff.Run(ctx, cfg, "tcp", ":8080", srv); err != nil {
		log.Fatal(err)
	}
}

// The steps that Run takes, for a server with more than one socket or a
// lifecycle of its own. Shutting down with drain.Server (what Run does for
// an *http.Server) answers every request on every accepted connection;
// http.Server.Shutdown alone does not.
func ExampleHandoff() {
	h, err := handoff.Start(context.Background(), handoff.Config{
		Path:   filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "myserver.sock"),
		Logger: slog.Default(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	ln, err := h.Listen(context.Background(), "tcp", ":8080")
	if err != nil {
		log.Fatal(err)
	}
	srv := drain.NewServer(&http.Server{Handler: http.DefaultServeMux})
	go srv.Serve(ln)
	if err := h.Ready(); err != nil {
		log.Fatal(err)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	select {
	case <-h.Done(): // a successor serves: hand the port over
	case <-stop: // stop for good
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Print(err)
	}
}
