package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"

	"github.com/b93f8b21/reuseport/internal/test/servercmd"
)

// The ways to stop the TCP server. first-query answers the first query of
// every connection accepted; native is plain dns.Server.ShutdownContext,
// kept so that tests can show what it loses.
const (
	shutdownFirstQuery = "first-query"
	shutdownNative     = "native"
)

// command is this program's command line: the flags every server command
// of the repository shares, and its own.
var command = servercmd.Command{
	Name:                 "dnsserver",
	Summary:              "Answer DNS queries for a zone on UDP and TCP on one port, which other copies of this program share.",
	Addr:                 "127.0.0.1:5353",
	HandoffUsage:         "unix socket `path` for lossless restarts: a new copy started with the same -addr and -handoff takes this copy's UDP and TCP sockets, and this copy answers what it has read and exits; each worker needs a path of its own",
	ShutdownTimeoutUsage: "when stopping, how long to wait for the queries read and the TCP connections accepted before closing them",
	Shutdowns:            []string{shutdownFirstQuery, shutdownNative},
	ShutdownUsage:        "how the TCP server stops: first-query answers the first query of every connection accepted, then closes it; native is plain miekg/dns ShutdownContext, which closes connections whose query it has not read yet (a comparison knob for tests, not for production)",
	MoreFlags:            moreFlags,
}

// own is what this command's own flags ask for, set by each Parse.
var own struct {
	zone string // fully qualified
	a    net.IP
}

func moreFlags(fs *flag.FlagSet) func() error {
	var a string
	fs.StringVar(&own.zone, "zone", "example.test.", "the `zone` answered for: every name in it has the -a address and a TXT record naming the pid that answered")
	fs.StringVar(&a, "a", "192.0.2.1", "the IPv4 `address` of every name in the zone")
	return func() error {
		if _, port, err := net.SplitHostPort(fs.Lookup("addr").Value.String()); err != nil {
			return fmt.Errorf("-addr: %w", err)
		} else if port == "0" {
			return errors.New("-addr must name a port, which UDP and TCP share: port 0 would give each a port of its own")
		}
		if _, ok := dns.IsDomainName(own.zone); !ok {
			return errors.New("-zone is not a domain name: " + own.zone)
		}
		own.zone = dns.Fqdn(strings.ToLower(own.zone))
		if own.a = net.ParseIP(a).To4(); own.a == nil {
			return errors.New("-a must be an IPv4 address, got " + a)
		}
		return nil
	}
}
