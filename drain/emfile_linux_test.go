package drain_test

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/drain"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
)

// TestServeBacksOffOnEMFILE runs out of descriptors for real: accept(2)
// fails with EMFILE while the connection waits in the queue. Serve must
// back off rather than spin, and serve the connection once descriptors are
// available again. It runs in a child process (made by nstest) because the
// limit applies to the whole process.
func TestServeBacksOffOnEMFILE(t *testing.T) {
	if nstest.Isolate(t) {
		return
	}
	var mu sync.Mutex
	var logged []string
	var logCalls calls
	errorLog := log.New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		logged = append(logged, string(p))
		mu.Unlock()
		logCalls.add()
		return len(p), nil
	}), "", 0)
	d := drain.NewServer(&http.Server{Handler: hello, ErrorLog: errorLog})
	ln := listen(t)
	served := serve(d.Serve, ln)

	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
			t.Fatalf("restoring RLIMIT_NOFILE: %v", err)
		}
	}
	defer restore()
	// Lower the limit once the client's socket exists and before it
	// connects, so that the server's accept(2) is the call that fails.
	dialer := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		f, err := os.Open(os.DevNull) // takes the lowest free descriptor
		if err != nil {
			return err
		}
		lowest := f.Fd()
		f.Close()
		return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(lowest), Max: limit.Max})
	}}
	c, err := dialer.Dial("tcp", ln.Addr().String())
	if err != nil {
		restore()
		t.Fatal(err)
	}
	defer c.Close()
	// Serve logs each failed Accept, then pauses before the next one.
	at := logCalls.wait(t, "logged Accept error", 4)
	restore()

	mu.Lock()
	first := logged[0]
	mu.Unlock()
	if !strings.Contains(first, "too many open files") {
		t.Fatalf("out of descriptors, Serve logged %q first; want EMFILE", first)
	}
	wantBackoff(t, "logged Accept error", at)
	t.Logf("out of descriptors, Serve logged %q and backed off %v", first, at[len(at)-1].Sub(at[0]))
	c.SetDeadline(time.Now().Add(timeout))
	resp, body, err := get(c, "/")
	if err != nil || resp.StatusCode != http.StatusOK || body != "hello" {
		t.Fatalf("request on the connection accepted after EMFILE: %v %q %v", resp, body, err)
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := recv(t, "Serve", served); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want %v", err, http.ErrServerClosed)
	}
}
