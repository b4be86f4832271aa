//go:build darwin || freebsd || linux

package handoff_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/b93f8b21/reuseport/handoff"
)

// Two generations of an HTTP server, played here by one process: the
// successor inherits the listening socket, the predecessor is told to
// stop, and requests go on being answered on the same port.
func Example() {
	dir, err := os.MkdirTemp("", "handoff-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "server.sock")

	serve := func(name string) (*handoff.Handoff, *http.Server, string) {
		h, err := handoff.Start(context.Background(), handoff.Config{Path: path})
		if err != nil {
			log.Fatal(err)
		}
		// Port 0 takes an inherited socket whatever port it has.
		ln, err := h.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, name)
		})}
		go srv.Serve(ln)
		if err := h.Ready(); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s socket\n", name, h.Sockets()[0].Origin)
		return h, srv, "http://" + ln.Addr().String()
	}

	old, oldSrv, url := serve("first")
	_, _, url2 := serve("second")
	<-old.Done()
	oldSrv.Shutdown(context.Background()) // stop accepting, finish requests
	old.Close()
	fmt.Println("same address:", url == url2)

	resp, err := http.Get(url)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println("answered by:", string(body))
	// Output:
	// first: fresh socket
	// second: inherited socket
	// same address: true
	// answered by: second
}

// The main function of a server: the same code runs at the first start
// and at every restart, whoever starts the new process.
func Example_server() {
	h, err := handoff.Start(context.Background(), handoff.Config{
		Path: filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "myserver.sock"),
		Logf: log.Printf,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	ln, err := h.Listen("tcp", ":8080")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.DefaultServeMux}
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
	srv.Shutdown(context.Background())
}
