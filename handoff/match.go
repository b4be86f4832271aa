package handoff

import (
	"context"
	"net"
	"net/netip"
	"strconv"
)

// request is what a Listen or ListenPacket call asks for, in the terms a
// socket reports about itself (see sockInfo), so that an inherited or
// activated socket can stand in for the one Go would have made.
type request struct {
	proto  string     // "tcp" or "udp"
	family string     // "4", "6" or "" (the network's suffix)
	ip     netip.Addr // the zero Addr asks for the wildcard address
	port   uint16     // 0 takes any port
}

// parseRequest resolves network and address as [net.Listen] would. It
// reports false when they cannot name an IP socket; the fresh bind that
// follows then fails with the standard library's own error.
func parseRequest(network, address string) (request, bool) {
	var r request
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
		r.proto, r.family = network[:3], network[3:]
	default:
		return r, false
	}
	host, service, err := net.SplitHostPort(address)
	if err != nil {
		return r, false
	}
	port, err := net.LookupPort(network, service)
	if err != nil {
		return r, false
	}
	r.port = uint16(port)
	if host == "" {
		return r, true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		// A name resolves the way net.Listen resolves it: the first IPv4
		// address if there is one, else the first address.
		ips, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip"+r.family, host)
		if err != nil || len(ips) == 0 {
			return r, false
		}
		ip = ips[0]
		for _, a := range ips {
			if a.Unmap().Is4() {
				ip = a
				break
			}
		}
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() {
		// "0.0.0.0" and "::" are the wildcard; for "tcp" and "udp" Go
		// makes either one a dual-stack [::] socket.
		return r, true
	}
	if z := ip.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			ip = ip.WithZone(strconv.Itoa(ifi.Index))
		}
	}
	r.ip = ip
	return r, true
}

// matches reports whether s is a socket Go would have made for r.
func (r request) matches(s sockInfo) bool {
	proto, family := s.network[:3], s.network[3:]
	if proto != r.proto {
		return false
	}
	switch r.family {
	case "4", "6":
		if family != r.family {
			return false
		}
	default:
		// Go makes "tcp" and "udp" sockets IPv4 or dual-stack IPv6,
		// never IPv6-only.
		if family == "6" {
			return false
		}
	}
	a := s.addr.Addr()
	if r.ip.IsValid() {
		if a.Unmap() != r.ip {
			return false
		}
	} else if !a.IsUnspecified() {
		return false
	}
	return r.port == 0 || r.port == s.addr.Port()
}
