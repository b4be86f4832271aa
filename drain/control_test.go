package drain_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/drain"
)

// A server and the two methods a test uses to run and stop it.
type server struct {
	serve    func(net.Listener) error
	shutdown func(context.Context) error
}

func stdlibServer(srv *http.Server) server { return server{srv.Serve, srv.Shutdown} }

func drainServer(srv *http.Server) server {
	d := drain.NewServer(srv)
	return server{d.Serve, d.Shutdown}
}

// lateRequest accepts a connection, starts a shutdown, and only 100ms after
// the shutdown began sends a request on that connection. It returns what
// the client got.
func lateRequest(t *testing.T, mk func(*http.Server) server) (*http.Response, string, error) {
	t.Helper()
	ln := listen(t)
	st := newStates()
	s := mk(&http.Server{Handler: hello, ConnState: st.hook})
	served := serve(s.serve, ln)

	c := dial(t, ln.Addr())
	st.wait(t, c, http.StateNew)
	shut := shutdown(s.shutdown, context.Background())
	// Serve returns once the shutdown has stopped the listener: the shutdown
	// has begun, and the request below is read after that.
	if err := recv(t, "Serve", served); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want %v", err, http.ErrServerClosed)
	}
	time.Sleep(100 * time.Millisecond)
	resp, body, err := get(c, "/")
	if err := recv(t, "Shutdown", shut); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	return resp, body, err
}

// TestStdlibShutdownDropsLateRequest is the control for
// TestShutdownAnswersLateRequest: it shows the loss this package exists to
// prevent. If it fails, net/http has stopped dropping such requests, and the
// package documentation, which says it does, must be revised.
func TestStdlibShutdownDropsLateRequest(t *testing.T) {
	checkLeaks(t)
	resp, body, err := lateRequest(t, stdlibServer)
	switch {
	case err == nil:
		t.Fatalf("net/http in %s answered a request read after Shutdown began (%s %q): the loss that package drain prevents seems fixed there; revise the package documentation and this test",
			runtime.Version(), resp.Status, body)
	case !isHangUp(err):
		t.Fatalf("the client got %v; want the connection closed without a response (EOF or reset)", err)
	}
}

// TestShutdownAnswersLateRequest: a connection accepted before Shutdown
// whose request arrives after Shutdown began gets a full response.
func TestShutdownAnswersLateRequest(t *testing.T) {
	checkLeaks(t)
	resp, body, err := lateRequest(t, drainServer)
	wantHello(t, "request sent 100ms into the drain", resp, body, err)
}
