package drain_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/b93f8b21/reuseport/drain"
)

func ExampleServer() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	d := drain.NewServer(&http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }),
		ReadHeaderTimeout: 10 * time.Second, // bounds how long a silent client can hold the drain
	})
	served := make(chan error, 1)
	go func() { served <- d.Serve(ln) }()

	resp, err := http.Get("http://" + ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, string(body))

	// In a restart, the successor is accepting from the same socket by now.
	// Every connection this server accepted gets its response.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		log.Print(err)
		d.Close()
	}
	fmt.Println(<-served)
	// Output:
	// 200 OK hello
	// http: Server closed
}

func ExampleListener() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	l := drain.NewListener(ln)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // after Close, an error wrapping net.ErrClosed
			}
			go func() {
				defer c.Close()
				io.Copy(c, c) // echo until the client closes
			}()
		}
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(c, "hi")
	buf := make([]byte, 2)
	io.ReadFull(c, buf)
	fmt.Printf("%s\n", buf)

	l.Close()
	c.Close() // the client is done; the echo goroutine closes its side
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fmt.Println("drained:", l.Wait(ctx))
	// Output:
	// hi
	// drained: <nil>
}
