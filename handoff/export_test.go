package handoff

import (
	"context"
	"os"

	"github.com/b93f8b21/reuseport"
)

// StartVersions is Start for a process that speaks protocol versions lo to hi.
func StartVersions(ctx context.Context, cfg Config, lo, hi uint16) (*Handoff, error) {
	return start(ctx, cfg, lo, hi)
}

// SetHook makes a predecessor call f at each stage of an exchange
// ("hello", "offered"). Set it before Ready.
func SetHook(h *Handoff, f func(stage string)) { h.hook = f }

// HelloFrame is the first frame a successor speaking versions lo to hi sends.
func HelloFrame(lo, hi uint16) []byte {
	return appendFrame(nil, msgHello, hello{minVersion: lo, maxVersion: hi, pid: uint32(os.Getpid())}.append(nil))
}

// ReadyFrame is the frame a successor sends once it serves.
func ReadyFrame() []byte { return appendFrame(nil, msgReady, nil) }

const (
	MinVersion = minVersion
	MaxVersion = maxVersion
	MsgRefuse  = byte(msgRefuse)
	MsgOffer   = byte(msgOffer)
)

// Socket describes a socket Listen or ListenPacket returned.
type Socket struct{ Network, Addr, Origin, Name string }

// Sockets describes the sockets Listen and ListenPacket have returned, in
// order.
func Sockets(h *Handoff) []Socket {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Socket
	for _, c := range h.claimed {
		out = append(out, Socket{c.network, c.addr.String(), c.origin.String(), c.name})
	}
	return out
}

// CopyServer is the copy Run serves of an *http.Server.
var CopyServer = copyServer

// SetCapabilities makes Run see caps instead of reuseport.Capabilities,
// until the test ends.
func SetCapabilities(t interface{ Cleanup(func()) }, caps func() reuseport.Capability) {
	old := capabilities
	capabilities = caps
	t.Cleanup(func() { capabilities = old })
}
