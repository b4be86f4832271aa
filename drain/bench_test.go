package drain_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkServe measures what the drain costs while serving: per request
// over keep-alive connections, and per connection with one request each.
func BenchmarkServe(b *testing.B) {
	for _, mode := range []struct {
		name string
		mk   func(*http.Server) server
	}{{"stdlib", stdlibServer}, {"drain", drainServer}} {
		for _, keepAlive := range []bool{true, false} {
			name := mode.name + "/keep-alive"
			if !keepAlive {
				name = mode.name + "/conn-per-request"
			}
			b.Run(name, func(b *testing.B) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				s := mode.mk(&http.Server{Handler: hello})
				served := serve(s.serve, ln)
				tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableKeepAlives: !keepAlive}
				defer tr.CloseIdleConnections()
				client := &http.Client{Transport: tr}
				url := "http://" + ln.Addr().String() + "/"
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := client.Get(url)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
				b.StopTimer()
				// The transport may hold connections it dialed but never
				// used; the drain would wait for their requests.
				tr.CloseIdleConnections()
				if err := s.shutdown(context.Background()); err != nil {
					b.Error(err)
				}
				<-served
			})
		}
	}
}
