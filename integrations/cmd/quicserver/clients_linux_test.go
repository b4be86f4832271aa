package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
)

// requestTimeout bounds each GET. Without a shared stateless reset key a
// connection whose packets reach a socket that does not know it gets no
// answer at all, so this is how a client sees it broken.
const requestTimeout = 5 * time.Second

// How a client connection ended.
type ending int

const (
	alive  ending = iota // still open when the load stopped
	clean                // closed after the server's GOAWAY, every request answered
	broken               // a request failed, or the connection died under it
)

// connRecord is the life of one long-lived connection that was
// established (it had an answer).
type connRecord struct {
	pid      int       // the copy that answered
	at       time.Time // when it was first answered
	requests int       // answered
	end      ending
	err      error // why, when broken
}

// tally collects what the clients saw.
type tally struct {
	mu       sync.Mutex
	conns    []*connRecord
	newConns int         // connections opened (every dial and its first GET)
	newFails []string    // those that failed, and why
	rejected int         // requests refused with H3_REQUEST_REJECTED after a GOAWAY, then retried
	goaway   int         // requests not sent because GOAWAY had just arrived, then retried
	newBy    map[int]int // pid → connections of the short clients it answered
}

func (t *tally) newConn(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.newConns++
	if err != nil {
		t.newFails = append(t.newFails, err.Error())
	}
}

// summary is a tally's figures, split by copy.
type summary struct {
	conns, broken, clean, requests int
	brokenBy                       map[int]int // pid → broken connections
	connsBy                        map[int]int // pid → established connections
	cleanBy                        map[int]int
	reasons                        map[string]int
}

func (t *tally) summary() summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := summary{brokenBy: map[int]int{}, connsBy: map[int]int{}, cleanBy: map[int]int{}, reasons: map[string]int{}}
	for _, c := range t.conns {
		s.conns++
		s.connsBy[c.pid]++
		s.requests += c.requests
		switch c.end {
		case broken:
			s.broken++
			s.brokenBy[c.pid]++
			s.reasons[reason(c.err)]++
		case clean:
			s.clean++
			s.cleanBy[c.pid]++
		}
	}
	return s
}

// except sums the figures of every copy not in pids.
func except(m map[int]int, pids ...int) int {
	n := 0
	for p, v := range m {
		if !contains(pids, p) {
			n += v
		}
	}
	return n
}

func contains(pids []int, p int) bool {
	for _, q := range pids {
		if q == p {
			return true
		}
	}
	return false
}

// reason names a failure briefly, for the log.
func reason(err error) string {
	var app *quic.ApplicationError
	var idle *quic.IdleTimeoutError
	var reset *quic.StatelessResetError
	var h3 *http3.Error
	switch {
	case errors.As(err, &reset):
		return "stateless reset"
	case errors.As(err, &idle):
		return "idle timeout"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in " + requestTimeout.String()
	case errors.As(err, &h3):
		return fmt.Sprintf("http3 %v", h3.ErrorCode)
	case errors.As(err, &app):
		return fmt.Sprintf("closed with %#x (remote %v)", uint64(app.ErrorCode), app.Remote)
	}
	return err.Error()
}

func sortedReasons(m map[string]int) string {
	var s []string
	for k, v := range m {
		s = append(s, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// h3conn is one client connection: a UDP socket of its own (so that each
// has its own flow through the kernel's hash), a QUIC connection and an
// HTTP/3 client on it.
type h3conn struct {
	tr *quic.Transport
	qc *quic.Conn
	cc *http3.ClientConn
}

var clientTLS = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{http3.NextProtoH3}}

func dial(ctx context.Context, addr *net.UDPAddr) (*h3conn, error) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: addr.IP})
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: udp}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	qc, err := tr.Dial(ctx, addr, clientTLS, &quic.Config{HandshakeIdleTimeout: requestTimeout})
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, fmt.Errorf("dial: %w", err)
	}
	return &h3conn{tr: tr, qc: qc, cc: (&http3.Transport{}).NewClientConn(qc)}, nil
}

// get sends one GET and returns the pid that answered.
func (c *h3conn) get(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.cc.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %s", resp.Status)
	}
	pid := loadgen.ParsePID(b)
	if pid == 0 {
		return 0, fmt.Errorf("no pid in %q", b)
	}
	return pid, nil
}

// closedByGoaway reports whether the connection has ended because the
// client closed it after a GOAWAY: the HTTP/3 client closes a connection
// itself, with H3_NO_ERROR, only then. It waits up to wait for the end.
func (c *h3conn) closedByGoaway(wait time.Duration) bool {
	select {
	case <-c.qc.Context().Done():
	case <-time.After(wait):
		return false
	}
	var app *quic.ApplicationError
	err := context.Cause(c.qc.Context())
	return errors.As(err, &app) && !app.Remote && app.ErrorCode == quic.ApplicationErrorCode(http3.ErrCodeNoError)
}

func (c *h3conn) close() {
	c.qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
	c.tr.Close()
	c.tr.Conn.Close()
}

// longClient keeps one connection and sends a GET on it every interval,
// until ctx is done. A connection closed after a GOAWAY is replaced by a
// new one (counted among the new connections), and a request the server
// refused unprocessed or the client held back because of the GOAWAY is
// sent again on it at once, as HTTP/3 clients do.
func longClient(ctx context.Context, addr *net.UDPAddr, t *tally, interval time.Duration) {
	url := "https://" + addr.String() + "/"
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var c *h3conn
	var rec *connRecord
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	finish := func(e ending, err error) {
		if rec != nil {
			t.mu.Lock()
			rec.end, rec.err = e, err
			t.mu.Unlock()
		}
		c.close()
		c, rec = nil, nil
	}
	again := false
	for ctx.Err() == nil {
		if !again {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		again = false
		if c == nil {
			var err error
			if c, err = dial(ctx, addr); err != nil {
				if ctx.Err() == nil {
					t.newConn(err)
				}
				continue
			}
		}
		if c.closedByGoaway(0) {
			finish(clean, nil)
			again = true
			continue
		}
		pid, err := c.get(ctx, url)
		if ctx.Err() != nil {
			return
		}
		ferr := c.failure(err)
		first := rec == nil
		if first {
			t.newConn(ferr)
		}
		switch {
		case err == nil:
			t.mu.Lock()
			if first {
				rec = &connRecord{pid: pid, at: time.Now()}
				t.conns = append(t.conns, rec)
			}
			rec.requests++
			t.mu.Unlock()
		case ferr == nil:
			t.retried(err)
			finish(clean, nil)
			again = true
		default:
			finish(broken, err)
		}
	}
}

// failure returns err unless it is the end of a request that HTTP/3 says
// to send again: refused unprocessed by a server shutting down gracefully
// (H3_REQUEST_REJECTED), or held back by the client because the server's
// GOAWAY had just arrived, after which the client closes the connection.
func (c *h3conn) failure(err error) error {
	var h3 *http3.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &h3) && h3.ErrorCode == http3.ErrCodeRequestRejected:
		return nil
	case c.closedByGoaway(time.Second):
		return nil
	}
	return err
}

// retried counts a request failure that failure let through.
func (t *tally) retried(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var h3 *http3.Error
	if errors.As(err, &h3) {
		t.rejected++
	} else {
		t.goaway++
	}
}

// shortClient opens a new connection for every GET, until ctx is done.
func shortClient(ctx context.Context, addr *net.UDPAddr, t *tally) {
	url := "https://" + addr.String() + "/"
	for ctx.Err() == nil {
		c, err := dial(ctx, addr)
		if err == nil {
			var pid int
			pid, err = c.get(ctx, url)
			switch {
			case err == nil:
				t.mu.Lock()
				if t.newBy == nil {
					t.newBy = make(map[int]int)
				}
				t.newBy[pid]++
				t.mu.Unlock()
			case c.failure(err) == nil:
				t.retried(err)
				err = nil // the connection was fine; the request goes again on the next
			}
			c.close()
		}
		if ctx.Err() != nil {
			return
		}
		t.newConn(err)
	}
}
