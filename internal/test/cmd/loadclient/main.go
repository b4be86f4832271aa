// Command loadclient sends HTTP load to a server on loopback with the
// load generator the tests use (internal/test/loadgen), until SIGINT or SIGTERM
// or -max-duration, and prints what it saw, so that a shell script can put
// load on a server while it restarts it some other way (systemctl, a
// container engine) and check the figures:
//
//	loadclient -addr 127.0.0.1:8080 & load=$!
//	...                       # restart the server
//	kill -INT $load; wait $load
//
// The last line on stdout is "requests=N failed=M pids=K", K being the
// number of distinct pid= values the responses named; stderr gets the full
// summary, with every kind of failure and its first error. The exit status
// is 0 whatever the failures: judging them is the caller's business.
//
// It refuses any address that is not a loopback IP: run it inside the
// network namespace of the server (nsenter --net=...) instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
)

func main() {
	var cfg loadgen.Config
	flag.StringVar(&cfg.Addr, "addr", "", "`host:port` of the server; the host must be a loopback IP")
	flag.IntVar(&cfg.Clients, "clients", 64, "concurrent clients")
	flag.BoolVar(&cfg.KeepAlive, "keepalive", false, "send each client's requests over one HTTP/1.1 connection instead of one connection per request")
	flag.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "per request, from the dial to the last byte")
	flag.DurationVar(&cfg.Duration, "max-duration", 5*time.Minute, "stop after this long if no signal came first")
	flag.Parse()
	if err := check(cfg, flag.NArg()); err != nil {
		fmt.Fprintf(os.Stderr, "loadclient: %v\n", err)
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadclient: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "loadclient: %s\n", res)
	fmt.Printf("requests=%d failed=%d pids=%d\n", res.Requests(), res.Failed(), len(res.PIDs()))
}

// check refuses a command line that would send load anywhere but to
// loopback, or never stop.
func check(cfg loadgen.Config, nargs int) error {
	if nargs > 0 {
		return fmt.Errorf("takes flags only")
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return fmt.Errorf("-addr: %v", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %s: the host must be a loopback IP", cfg.Addr)
	}
	if cfg.Clients <= 0 || cfg.Timeout <= 0 || cfg.Duration <= 0 {
		return fmt.Errorf("-clients, -timeout and -max-duration must be positive")
	}
	return nil
}
