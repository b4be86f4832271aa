package drain_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/drain"
)

// generation answers "hello" and names the server that answered.
func generation(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Generation", name)
		h.ServeHTTP(w, r)
	})
}

// successor serves a duplicate of ln's socket, as the process that received
// it would, so that clients sent away by the drain find a server.
func successor(t *testing.T, ln net.Listener, srv *http.Server, certFile, keyFile string) {
	t.Helper()
	srv.Handler = generation("new", hello)
	dl := dup(t, ln)
	served := make(chan error, 1)
	go func() {
		if certFile != "" {
			served <- srv.ServeTLS(dl, certFile, keyFile)
		} else {
			served <- srv.Serve(dl)
		}
	}()
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("successor's Shutdown: %v", err)
		}
		<-served
	})
}

type result struct {
	generation string
	err        error
}

// fetch GETs url in a goroutine; the channel yields who answered, or why
// the request failed.
func fetch(client *http.Client, url string) <-chan result {
	done := make(chan result, 1)
	go func() {
		resp, err := client.Get(url)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && (resp.StatusCode != http.StatusOK || string(body) != "hello") {
			err = fmt.Errorf("got %s %q", resp.Status, body)
		}
		done <- result{resp.Header.Get("Generation"), err}
	}()
	return done
}

func h2c() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// slowAt makes requests for path wait for release, announcing each on
// started; other requests are answered at once.
func slowAt(path string, started chan<- struct{}, release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2", http.StatusHTTPVersionNotSupported)
			return
		}
		if r.URL.Path == path {
			started <- struct{}{}
			<-release
		}
		hello(w, r)
	})
}

// TestShutdownHTTP2 drains a server speaking cleartext HTTP/2 (h2c) with a
// stream in progress: the stream gets its response, Shutdown waits for it,
// and a request made during the drain is answered by one server or the
// other.
func TestShutdownHTTP2(t *testing.T) {
	checkLeaks(t)
	started, release := make(chan struct{}, 1), make(chan struct{})
	d := drain.NewServer(&http.Server{Protocols: h2c(), Handler: generation("old", slowAt("/slow", started, release))})
	ln := listen(t)
	served := serve(d.Serve, ln)
	tr := &http.Transport{Protocols: h2c()}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeout}
	url := "http://" + ln.Addr().String()

	first := fetch(client, url+"/slow")
	recv(t, "slow handler", started)
	successor(t, ln, &http.Server{Protocols: h2c()}, "", "")
	shut := shutdown(d.Shutdown, context.Background())
	recv(t, "Serve", served)
	if r := recv(t, "request during the drain", fetch(client, url+"/")); r.err != nil {
		t.Errorf("request during the drain: %v", r.err)
	}
	pending(t, "Shutdown with a stream open", shut)
	close(release)
	if r := recv(t, "request", first); r.err != nil || r.generation != "old" {
		t.Errorf("stream open when the drain began: answered by %q, %v; want the draining server", r.generation, r.err)
	}
	if err := recv(t, "Shutdown", shut); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestShutdownBusyHTTP2 drains an HTTP/2 connection that keeps a stream
// open throughout. The drain must not wait for it to fall idle, which may
// never happen: GOAWAY must move the client's new requests to the successor
// while the open stream finishes.
func TestShutdownBusyHTTP2(t *testing.T) {
	checkLeaks(t)
	started, release := make(chan struct{}, 1), make(chan struct{})
	d := drain.NewServer(&http.Server{Protocols: h2c(), Handler: generation("old", slowAt("/hold", started, release))})
	ln := listen(t)
	served := serve(d.Serve, ln)
	tr := &http.Transport{Protocols: h2c()}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeout}
	url := "http://" + ln.Addr().String()

	hold := fetch(client, url+"/hold")
	recv(t, "held stream", started)
	successor(t, ln, &http.Server{Protocols: h2c()}, "", "")
	shut := shutdown(d.Shutdown, context.Background())
	recv(t, "Serve", served)
	by := make(map[string]int)
	for deadline := time.Now().Add(3 * time.Second); by["new"] == 0 && time.Now().Before(deadline); {
		r := recv(t, "request", fetch(client, url+"/"))
		if r.err != nil {
			t.Fatalf("request during the drain: %v", r.err)
		}
		by[r.generation]++
	}
	if by["new"] == 0 {
		t.Errorf("for 3s of drain all %d requests went to the draining server's connection; want GOAWAY to move them", by["old"])
	}
	pending(t, "Shutdown with a stream open", shut)
	close(release)
	if r := recv(t, "held stream", hold); r.err != nil || r.generation != "old" {
		t.Errorf("stream open throughout the drain: answered by %q, %v; want the draining server", r.generation, r.err)
	}
	if err := recv(t, "Shutdown", shut); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestShutdownTLS: a TLS connection accepted before the drain, whose
// handshake and request both come after it began, is answered. Over
// HTTP/1.1 the draining server must answer it; over HTTP/2 its GOAWAY may
// send the request on to the successor.
func TestShutdownTLS(t *testing.T) {
	certFile, keyFile, roots := selfSigned(t)
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			checkLeaks(t)
			st := newStates()
			d := drain.NewServer(&http.Server{Handler: generation("old", hello), ConnState: st.hook})
			ln := listen(t)
			served := serve(func(ln net.Listener) error { return d.ServeTLS(ln, certFile, keyFile) }, ln)
			raw := dial(t, ln.Addr())
			st.wait(t, raw, http.StateNew)
			successor(t, ln, &http.Server{}, certFile, keyFile)
			shut := shutdown(d.Shutdown, context.Background())
			recv(t, "Serve", served)
			time.Sleep(100 * time.Millisecond)

			config := &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{proto}}
			c := tls.Client(raw, config)
			if err := c.Handshake(); err != nil {
				t.Fatalf("TLS handshake during the drain: %v", err)
			}
			if got := c.ConnectionState().NegotiatedProtocol; got != proto {
				t.Fatalf("negotiated %q, want %q", got, proto)
			}
			// The first connection is the one accepted before the drain;
			// any retry dials the socket afresh.
			tr := &http.Transport{TLSClientConfig: config, Protocols: new(http.Protocols)}
			tr.Protocols.SetHTTP1(proto == "http/1.1")
			tr.Protocols.SetHTTP2(proto == "h2")
			tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				if c != nil {
					defer func() { c = nil }()
					return c, nil
				}
				return (&tls.Dialer{Config: config}).DialContext(ctx, network, ln.Addr().String())
			}
			defer tr.CloseIdleConnections()
			r := recv(t, "request", fetch(&http.Client{Transport: tr, Timeout: timeout}, "https://localhost/"))
			switch {
			case r.err != nil:
				t.Errorf("request during the drain: %v", r.err)
			case proto == "http/1.1" && r.generation != "old":
				t.Errorf("HTTP/1.1 request answered by %q, want the draining server", r.generation)
			default:
				t.Logf("answered by the %s server", r.generation)
			}
			if err := recv(t, "Shutdown", shut); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		})
	}
}

// selfSigned writes a certificate for localhost and its key to files.
func selfSigned(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}
