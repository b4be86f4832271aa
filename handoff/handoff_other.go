//go:build !(darwin || freebsd || linux)

package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
)

// Handing sockets over needs SCM_RIGHTS and a way to learn the user of the
// process at the other end of a unix socket; golang.org/x/sys exposes the
// latter for Linux (SO_PEERCRED), Darwin and FreeBSD (LOCAL_PEERCRED) only,
// and the check is never skipped.
var errUnsupported = fmt.Errorf("handing sockets to a successor is not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// platform is empty here; Handoff's sys field needs a type on every OS.
//
//lint:ignore U1000 used only as the type of a field the stub never reads.
type platform struct{}

func (h *Handoff) start(context.Context) error { return errUnsupported }

func (h *Handoff) ready() error { return errUnsupported }

func (h *Handoff) close() error { return nil }

func (h *Handoff) store() {}

func (h *Handoff) predecessorPID() int { return 0 }

func listenerInfo(net.Listener) (sockInfo, error) { return sockInfo{}, errUnsupported }

func (h *Handoff) passConn(sockInfo, net.Conn) bool { return false }
