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

// requestTimeout bounds each request: a QUIC connection whose packets no
// process reads any more gets no answer at all, and this is how its client
// sees it broken.
const requestTimeout = 5 * time.Second

// counts is what one kind of client saw.
type counts struct {
	mu      sync.Mutex
	ok      int
	lost    []string    // requests that failed, and why
	retried int         // HTTP/3 only: refused after a GOAWAY, sent again on a new connection
	pids    map[int]int // answers by pid
	bad     []string    // answers that were not what the client expected
}

func (c *counts) answered(pid int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ok++
	if c.pids == nil {
		c.pids = make(map[int]int)
	}
	c.pids[pid]++
}

func (c *counts) failed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost = append(c.lost, err.Error())
}

func (c *counts) wrong(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bad = append(c.bad, what)
}

func (c *counts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d answered by %d processes, %d lost (%s), %d retried after GOAWAY", c.ok, len(c.pids), len(c.lost), summarize(c.lost), c.retried)
}

// summarize counts the distinct failures.
func summarize(errs []string) string {
	m := map[string]int{}
	for _, e := range errs {
		m[e]++
	}
	var s []string
	for k, v := range m {
		s = append(s, fmt.Sprintf("%dx %s", v, k))
	}
	sort.Strings(s)
	return strings.Join(s, "; ")
}

// tcpClient sends GETs through c, one after the other, until ctx is done,
// and checks the protocol and the Alt-Svc header of each answer. A request
// that fails is lost: net/http's own retries (of a request an HTTP/2
// GOAWAY left unprocessed, or one sent on a keep-alive connection that the
// server had closed) happen inside Do, as for any program using it.
func tcpClient(ctx context.Context, c *http.Client, url string, protoMajor int, altSvc string, n *counts) {
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, url, nil)
		if err != nil {
			n.failed(err)
			return
		}
		resp, err := c.Do(req)
		if err != nil {
			n.failed(err)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			n.failed(err)
			continue
		case resp.StatusCode != http.StatusOK:
			n.failed(fmt.Errorf("status %s", resp.Status))
			continue
		case resp.ProtoMajor != protoMajor:
			n.wrong(fmt.Sprintf("answered over %s, want HTTP/%d", resp.Proto, protoMajor))
		case altSvc != "" && resp.Header.Get("Alt-Svc") != altSvc:
			n.wrong(fmt.Sprintf("Alt-Svc %q, want %q", resp.Header.Get("Alt-Svc"), altSvc))
		}
		pid := loadgen.ParsePID(b)
		if pid == 0 {
			pid = metricsPID(string(b))
		}
		n.answered(pid)
	}
}

// metricsPID is the webserver_pid sample of a metrics page, or 0.
func metricsPID(page string) int {
	var pid int
	fmt.Sscan(parseMetrics(page)["webserver_pid"], &pid)
	return pid
}

var clientTLS = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{http3.NextProtoH3}}

// h3conn is one HTTP/3 client connection, on a UDP socket of its own.
type h3conn struct {
	tr *quic.Transport
	qc *quic.Conn
	cc *http3.ClientConn
}

func dialH3(ctx context.Context, addr *net.UDPAddr) (*h3conn, error) {
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

func (c *h3conn) get(url string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
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

// closedByGoaway reports whether the client closed the connection itself,
// with H3_NO_ERROR, which the HTTP/3 client does only after a GOAWAY; it
// waits up to wait for the connection to end.
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

// retryable reports whether err ends a request that HTTP/3 says to send
// again, as cmd/quicserver's tests count it: refused unprocessed by a
// server shutting down gracefully (H3_REQUEST_REJECTED), or held back by
// the client because the server's GOAWAY had just arrived.
func (c *h3conn) retryable(err error) bool {
	var h3 *http3.Error
	return errors.As(err, &h3) && h3.ErrorCode == http3.ErrCodeRequestRejected || c.closedByGoaway(time.Second)
}

func (c *h3conn) close() {
	c.qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
	c.tr.Close()
	c.tr.Conn.Close()
}

// h3Client sends GETs until ctx is done: on a connection of its own that
// it keeps (keep), replacing it once it closed after a GOAWAY or broke,
// or on a new connection for each GET. A failed dial or GET is lost unless
// retryable says HTTP/3 sends it again; then it goes again at once, on a
// new connection.
func h3Client(ctx context.Context, addr *net.UDPAddr, keep bool, n *counts) {
	url := "https://" + addr.String() + "/"
	var c *h3conn
	drop := func() {
		if c != nil {
			c.close()
			c = nil
		}
	}
	defer drop()
	for ctx.Err() == nil {
		if c != nil && c.closedByGoaway(0) {
			drop()
		}
		if c == nil {
			var err error
			if c, err = dialH3(context.WithoutCancel(ctx), addr); err != nil {
				n.failed(err)
				continue
			}
		}
		pid, err := c.get(url)
		switch {
		case err == nil:
			n.answered(pid)
		case c.retryable(err):
			n.mu.Lock()
			n.retried++
			n.mu.Unlock()
			drop()
		default:
			n.failed(err)
			drop()
		}
		if !keep {
			drop()
		}
	}
}
