package steer

import (
	"errors"
	"fmt"
	"net"
)

// platform is what the OS provides; sys is this OS's.
type platform interface {
	// supported returns nil where the group's program can be attached.
	supported() error
	// attach builds the program for t (nil: steer probes only), for
	// connection IDs of cidLen bytes keyed by k, and attaches it to the
	// group of conn.
	attach(conn *net.UDPConn, t slotTable, cidLen int, k key) error
	// answerWhileJoining answers the probes that reach m's socket until
	// stop is called or a packet that is not a probe is next.
	answerWhileJoining(m *Member) (stop func())
}

// unsupported is the platform of every OS but Linux.
type unsupported struct{ goos string }

func (u unsupported) supported() error {
	return fmt.Errorf("steer: steering packets by connection ID needs Linux (SO_ATTACH_REUSEPORT_CBPF), not %s: %w", u.goos, errors.ErrUnsupported)
}

func (u unsupported) attach(*net.UDPConn, slotTable, int, key) error { return u.supported() }

func (unsupported) answerWhileJoining(*Member) func() { return func() {} }
