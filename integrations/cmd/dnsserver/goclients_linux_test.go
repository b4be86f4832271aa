package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// tally is what the clients of one transport saw.
type tally struct {
	Sent, Answered int
	Lost           map[string]int // kind of failure -> count
	PIDs           map[int]int    // pid that answered -> answers
	LastAnswer     time.Time
}

func (t *tally) lost() int {
	n := 0
	for _, c := range t.Lost {
		n += c
	}
	return n
}

func (t *tally) String() string {
	kinds := make([]string, 0, len(t.Lost))
	for k, c := range t.Lost {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, c))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("sent=%d answered=%d lost=%d %v from %d processes", t.Sent, t.Answered, t.lost(), kinds, len(t.PIDs))
}

func (t *tally) add(o *tally) {
	t.Sent += o.Sent
	t.Answered += o.Answered
	for k, c := range o.Lost {
		t.Lost[k] += c
	}
	for k, c := range o.PIDs {
		t.PIDs[k] += c
	}
	if o.LastAnswer.After(t.LastAnswer) {
		t.LastAnswer = o.LastAnswer
	}
}

func newTally() *tally { return &tally{Lost: make(map[string]int), PIDs: make(map[int]int)} }

// goLoad is what goClients saw, by transport.
type goLoad struct{ UDP, TCP *tally }

func (l *goLoad) String() string {
	return fmt.Sprintf("udp: %v; tcp (a new connection per query): %v", l.UDP, l.TCP)
}

// goClients runs clients UDP clients and clients TCP clients against addr
// for d, each asking for testName's TXT record, one query at a time: a UDP
// query from a new socket (a new source port), and a TCP query on a new
// connection, as dns.Client.Exchange does both. Nothing is retried; a
// query unanswered within timeout is lost.
func goClients(ctx context.Context, addr string, clients int, d, timeout time.Duration) *goLoad {
	res := &goLoad{UDP: newTally(), TCP: newTally()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for i := range 2 * clients {
		network, total := "udp", res.UDP
		if i%2 == 1 {
			network, total = "tcp", res.TCP
		}
		wg.Go(func() {
			mine := newTally()
			c := &dns.Client{Net: network, Timeout: timeout}
			for time.Now().Before(end) && ctx.Err() == nil {
				q := new(dns.Msg).SetQuestion(testName, dns.TypeTXT)
				mine.Sent++
				r, _, err := c.Exchange(q, addr)
				if err == nil && r.Rcode != dns.RcodeSuccess {
					err = fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
				}
				if err != nil {
					mine.Lost[kind(err)]++
					continue
				}
				mine.Answered++
				mine.PIDs[txtPID(r)]++
				mine.LastAnswer = time.Now()
			}
			mu.Lock()
			total.add(mine)
			mu.Unlock()
		})
	}
	wg.Wait()
	return res
}

// kind names a failed exchange for the counts.
func kind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed unanswered"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other: " + err.Error()
}
