//go:build darwin || freebsd || linux

package handoff_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/handoff"
)

// TestSingleCopyWhereSharingIsMissing: where sockets cannot share a port
// (Windows; here the OS is made to look so), Run with no Path binds a
// plain socket, says that a second copy cannot share the port, serves, and
// stops gracefully, answering the request in flight.
func TestSingleCopyWhereSharingIsMissing(t *testing.T) {
	handoff.SetCapabilities(t, func() reuseport.Capability {
		return reuseport.Capability{Err: fmt.Errorf("reuseport: sockets cannot share a port on plan10: %w", errors.ErrUnsupported)}
	})
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "single")
	})}
	log := newLog(t, "single")
	g := runGeneration(t, handoff.RunConfig{Config: handoff.Config{Logger: log.logger()}}, srv)
	addr := g.waitReady(t)
	if !log.contains("handoff: serving a single copy", "plan10") {
		t.Error("Run did not log that it serves a single copy, and why")
	}

	// A plain socket: a second bind of the port fails, even one that
	// asks to share it (with SO_REUSEPORT, the kernel would allow it).
	if ln, err := new(reuseport.ListenConfig).Listen(t.Context(), "tcp", addr.String()); err == nil {
		ln.Close()
		t.Fatal("a second socket shares the port of the single copy: Run bound it with SO_REUSEPORT")
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second bind: %v, want EADDRINUSE", err)
	}

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr.String())
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	g.stop()
	time.Sleep(50 * time.Millisecond) // the stop has begun; the request is in flight
	close(release)
	if body := <-got; body != "single" {
		t.Fatalf("request in flight at the stop got %q, want \"single\"", body)
	}
	if err := g.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
		t.Error("the port still accepts after Run returned")
	}
}

// TestRunServesTLS: an *http.Server whose TLSConfig has a certificate is
// served over TLS, with HTTP/2, not in cleartext.
func TestRunServesTLS(t *testing.T) {
	cert := selfSigned(t)
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }),
	}
	g := runGeneration(t, handoff.RunConfig{Config: handoff.Config{Logger: newLog(t, "tls").logger()}}, srv)
	addr := g.waitReady(t)
	// net/http's TLS server answers a cleartext request with 400.
	if resp, err := http.Get("http://" + addr.String()); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("a cleartext request got %s: the TLS server is served in cleartext", resp.Status)
		}
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}}
	resp, err := client.Get("https://" + addr.String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/2.0" {
		t.Fatalf("served over %q, want HTTP/2.0", b)
	}
	client.CloseIdleConnections()
}

// selfSigned makes a certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
