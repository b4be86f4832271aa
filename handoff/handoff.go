package handoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/sockaddr"
)

// Config configures [Start], and the handoff that [Run] takes part in.
// Its zero value is valid for Run, which then has no handoff; Start needs
// a Path.
type Config struct {
	// Path is the unix socket where a serving process waits for its
	// successor. Every generation of a server must use the same Path. It
	// should be in a directory only the server's user can write, such as
	// $XDG_RUNTIME_DIR or a systemd RuntimeDirectory. Next to it live
	// Path+".lock", which is never removed, and, briefly, Path+".new".
	Path string

	// ListenConfig makes the sockets that are neither inherited nor
	// activated. Nil means the zero value.
	ListenConfig *reuseport.ListenConfig

	// Activation makes Start take the sockets that systemd socket
	// activation passed (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), offer
	// them to Listen and ListenPacket after the inherited ones, and unset
	// those variables. It is off by default, as in go-systemd's
	// activation package: a process whose activated sockets are meant for
	// something else keeps them, and its environment, untouched. A Start
	// that fails leaves them untouched too.
	Activation bool

	// FDStore makes Ready store the sockets in systemd's file descriptor
	// store (sd_notify FDSTORE=1, named "handoff"), when NOTIFY_SOCKET is
	// set, so that they outlive a crash of the only process: systemd
	// passes them back to the process it restarts, where Start takes them
	// (it needs Activation) and logs their origin as stored. The
	// connections queued meanwhile wait in them. The unit needs
	// FileDescriptorStoreMax= of at least the number of sockets. A
	// successor in the same unit leaves the store to its predecessor,
	// whose entries systemd keeps while the unit lives; a socket only the
	// successor serves is stored at the unit's next start.
	FDStore bool

	// Timeout bounds each step of a handoff: the wait for the lock
	// that serializes successors, the exchange with the predecessor, and
	// telling it to stop. It must exceed the time a successor takes from
	// Start to Ready if successors may overlap. Zero means 5 seconds.
	Timeout time.Duration

	// Logger receives a record for every decision worth knowing about:
	// where each socket came from (Info), and why a handoff fell back to
	// fresh sockets or a step failed (Warn). Nil means no logging.
	Logger *slog.Logger
}

const defaultTimeout = 5 * time.Second

// origin says where a socket came from.
type origin uint8

const (
	fresh     origin = iota // bound by this process
	inherited               // handed over by the predecessor
	activated               // passed by systemd socket activation
	stored                  // passed back by systemd from its fd store
)

// fdStoreName is the FDNAME of the sockets Config.FDStore stores.
const fdStoreName = "handoff"

func (o origin) String() string {
	switch o {
	case fresh:
		return "fresh"
	case inherited:
		return "inherited"
	case activated:
		return "activated"
	case stored:
		return "stored"
	}
	return fmt.Sprintf("origin(%d)", uint8(o))
}

// Handoff holds the state of one process in a line of successive servers.
// [Start] makes one; its methods are safe for concurrent use.
type Handoff struct {
	cfg                    Config
	log                    *slog.Logger // never nil
	minVersion, maxVersion uint16
	hook                   func(stage string) // tests only; see export_test.go
	done                   chan struct{}
	notify                 *notifier // nil unless NOTIFY_SOCKET is set
	begun                  time.Time // when Start began
	status                 string    // the STATUS= of Ready; set by RunAll

	life sync.Mutex // serializes Ready and Close

	mu      sync.Mutex
	state   state
	offered []*candidate // inherited, then activated; not yet claimed
	claimed []claimed    // what a successor will be offered, in order
	sys     platform     // the OS-specific half

	// receivers take up connections a predecessor hands over, by the
	// listener they were accepted on (see RunAll); guarded by mu.
	receivers map[sockInfo]func(net.Conn) bool
	passMu    sync.Mutex // serializes passConn

	// inUnit says whether the successor that took over is in this
	// process's systemd unit; set before done is closed.
	inUnit bool
}

type state uint8

const (
	starting state = iota // between Start and Ready
	serving               // answering successors on Path
	retired               // a successor has taken over; Done is closed
	closed
)

// candidate is a socket this process received and may hand to the
// application: from the predecessor or from systemd.
type candidate struct {
	file   *os.File
	info   sockInfo // zero if the socket is not a TCP or UDP listener
	origin origin
	name   string
}

// claimed is a socket returned by Listen or ListenPacket.
type claimed struct {
	conn    syscall.Conn // reaches the fd to hand over; fails once closed
	network string       // as passed to Listen or ListenPacket
	addr    net.Addr
	origin  origin
	name    string // the systemd FileDescriptorName of an activated socket
}

// Start begins the life of a server process. It asks a predecessor
// serving on cfg.Path, if any, for its sockets, then, if cfg.Activation is
// set, takes the sockets systemd passed. A predecessor that dies, stalls or answers garbage is
// logged and the process goes on with fresh sockets. Start fails on bad
// input, a cancelled ctx, a Path it cannot use (not a socket, or in a
// directory it cannot write), a Path served by another user (the error
// wraps [os.ErrPermission]), or when another successor holds the lock for
// longer than the Timeout. A Start that fails has taken no socket.
//
// The caller must then call Listen and ListenPacket for each socket it
// serves, start serving, and call Ready.
func Start(ctx context.Context, cfg Config) (*Handoff, error) {
	return start(ctx, cfg, minVersion, maxVersion)
}

func start(ctx context.Context, cfg Config, lo, hi uint16) (*Handoff, error) {
	switch {
	case cfg.Path == "":
		return nil, errors.New("handoff: Config.Path is empty")
	case cfg.Path[0] == '@' || strings.IndexByte(cfg.Path, 0) >= 0:
		// An abstract socket has no file to rename or lock beside.
		return nil, fmt.Errorf("handoff: Config.Path %q must name a file, not an abstract socket", cfg.Path)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("handoff: Config.Timeout must not be negative, got %v", cfg.Timeout)
	case cfg.FDStore && !cfg.Activation:
		return nil, errors.New("handoff: Config.FDStore needs Config.Activation: stored sockets come back through LISTEN_FDS")
	case cfg.Timeout == 0:
		cfg.Timeout = defaultTimeout
	}
	if cfg.ListenConfig == nil {
		cfg.ListenConfig = new(reuseport.ListenConfig)
	}
	h := &Handoff{cfg: cfg, log: logger(cfg.Logger), minVersion: lo, maxVersion: hi, done: make(chan struct{}), begun: time.Now()}
	h.notify = newNotifier(h.log)
	if err := h.start(ctx); err != nil {
		return nil, edgeError(err)
	}
	return h, nil
}

// Listen returns a listener for network ("tcp", "tcp4" or "tcp6") and
// address: the inherited socket that Go would have made for them, else
// such a socket from systemd, else a fresh one sharing its port (see
// [reuseport.ListenConfig]). Matching goes by the socket's real local
// address, so ":8080" matches [::]:8080. Port 0 matches any port, so a
// port the kernel chose survives restarts; when several sockets match, each
// call takes the next one in the order the predecessor made them.
//
// An inherited or activated listener is rebuilt with [net.FileListener]:
// socket options set when it was bound stay, but the KeepAlive settings
// and Control function of Config.ListenConfig do not apply to it. A
// fresh socket is bound with ctx, as [net.ListenConfig.Listen] does.
func (h *Handoff) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	return listen(ctx, h, "tcp", network, address, net.FileListener, h.cfg.ListenConfig.Listen)
}

// ListenPacket is Listen for "udp", "udp4" and "udp6". Datagrams already
// queued on an inherited socket are read by whichever process reads first.
// See "UDP and QUIC" in the package documentation for when the predecessor
// should stop reading.
func (h *Handoff) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	return listen(ctx, h, "udp", network, address, net.FilePacketConn, h.cfg.ListenConfig.ListenPacket)
}

// listen is Listen and ListenPacket, for sockets of proto ("tcp" or "udp").
func listen[S any](ctx context.Context, h *Handoff, proto, network, address string, fromFile func(*os.File) (S, error),
	bind func(context.Context, string, string) (S, error)) (S, error) {
	var zero S
	c, err := h.take(proto, network, address)
	if err != nil {
		return zero, &net.OpError{Op: "listen", Net: network, Err: edgeError(err)}
	}
	var s S
	cl := claimed{network: network, origin: fresh}
	if c != nil {
		s, err = fromFile(c.file)
		c.file.Close() // fromFile made its own descriptor
		cl.origin, cl.name = c.origin, c.name
	} else {
		// This also reports a network of the wrong kind.
		s, err = bind(ctx, network, address)
	}
	if err != nil {
		return zero, err
	}
	cl.addr = sockaddr.Local(s)
	if err := h.track(s, cl); err != nil {
		closeAny(s)
		return zero, &net.OpError{Op: "listen", Net: network, Addr: cl.addr, Err: edgeError(err)}
	}
	attrs := []any{"network", network, "addr", cl.addr, "origin", cl.origin}
	if cl.name != "" {
		attrs = append(attrs, "name", cl.name)
	}
	h.log.Info("handoff: listening", attrs...)
	return s, nil
}

// take removes and returns the first offered socket of proto that can
// stand in for (network, address), or nil.
func (h *Handoff) take(proto, network, address string) (*candidate, error) {
	req, ok := parseRequest(network, address)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state == closed {
		return nil, errClosed
	}
	if !ok || req.proto != proto {
		return nil, nil
	}
	for i, c := range h.offered {
		if c.info.network != "" && req.matches(c.info) {
			h.offered = append(h.offered[:i], h.offered[i+1:]...)
			return c, nil
		}
	}
	return nil, nil
}

func (h *Handoff) track(s any, cl claimed) error {
	conn, ok := s.(syscall.Conn)
	if !ok {
		return fmt.Errorf("a %T cannot be handed over", s)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state == closed {
		return errClosed
	}
	cl.conn = conn
	h.claimed = append(h.claimed, cl)
	return nil
}

// Ready says that this process serves on every socket it needs. It closes
// the inherited and activated sockets no Listen call claimed, makes this
// process the one that answers on Path, and tells the predecessor, if any,
// to stop accepting: its [Handoff.Done] channel closes.
//
// If Ready fails, this process does not answer on Path and the
// predecessor keeps serving; the caller should normally exit.
func (h *Handoff) Ready() error {
	return edgeError(h.readyInner())
}

// readyInner is Ready, with errors that do not name the package yet, for
// Run to log them.
func (h *Handoff) readyInner() error {
	h.life.Lock()
	defer h.life.Unlock()
	h.mu.Lock()
	st, unclaimed := h.state, h.offered
	if st == starting {
		h.offered = nil
	}
	h.mu.Unlock()
	switch st {
	case closed:
		return errClosed
	case serving, retired:
		return errors.New("a second call of Ready")
	}
	h.closeCandidates(unclaimed, "unclaimed") // failures are logged; they do not stop serving
	if err := h.ready(); err != nil {
		return err
	}
	h.notifyReady()
	return nil
}

// notifyReady tells systemd, if it listens, that this process serves, and
// stores the sockets with Config.FDStore. A successor whose predecessor is
// in the same unit says nothing: the predecessor, the unit's main process,
// hands the unit over (see retire), as NotifyAccess=main allows it alone.
func (h *Handoff) notifyReady() {
	if h.notify == nil {
		if h.cfg.FDStore {
			h.log.Warn("handoff: nothing stored: Config.FDStore is set but NOTIFY_SOCKET is not (Type=notify and FileDescriptorStoreMax= store sockets)")
		}
		return
	}
	if pid := h.predecessorPID(); pid != 0 && sameUnit(pid) {
		h.log.Info("handoff: the predecessor in this systemd unit hands the unit over", "predecessor_pid", pid)
		return
	}
	status := h.status
	if status == "" {
		status = "serving"
	}
	h.notify.send(fmt.Sprintf("READY=1\nMAINPID=%d\nSTATUS=%s", os.Getpid(), status))
	if h.cfg.FDStore {
		h.store()
	}
}

// successorInUnit reports whether the successor that took over is in this
// process's systemd unit, which then goes on. Valid once Done is closed.
func (h *Handoff) successorInUnit() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inUnit
}

// Done is closed once a successor has taken the sockets and is serving.
// The process should then stop accepting (closing its listeners is safe:
// the successor holds the same sockets), finish the connections it has
// accepted, and exit.
func (h *Handoff) Done() <-chan struct{} { return h.done }

// Close stops answering successors on Path, removing Path if it is still
// this process's socket, and closes the sockets no Listen call claimed.
// Called before Ready, it abandons the handoff: the predecessor keeps
// serving. It does not close the listeners Listen and ListenPacket
// returned. Close is safe to call more than once; the first call reports
// what failed (closing a socket, removing Path), the others return nil.
func (h *Handoff) Close() error {
	h.life.Lock()
	defer h.life.Unlock()
	h.mu.Lock()
	st, unclaimed := h.state, h.offered
	h.state, h.offered = closed, nil
	h.mu.Unlock()
	if st == closed {
		return nil
	}
	err := h.closeCandidates(unclaimed, "unclaimed")
	return edgeError(errors.Join(err, h.close()))
}

var errClosed = fmt.Errorf("the Handoff is closed: %w", net.ErrClosed)

// edgeError prefixes err with the package's name. Errors made inside the
// package do not name it: each exported function that returns one, and
// only it, passes it through here, so that the name appears once.
func edgeError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("handoff: %w", err)
}

// closeCandidates closes sockets nobody claimed and returns what failed.
func (h *Handoff) closeCandidates(cs []*candidate, why string) error {
	var errs []error
	for _, c := range cs {
		if c.info.network != "" {
			h.log.Info("handoff: closing "+why+" socket", "origin", c.origin, "socket", c.info)
		} else {
			h.log.Warn("handoff: closing "+why+" descriptor: not a TCP or UDP listener", "origin", c.origin, "file", c.file.Name())
		}
		if err := c.file.Close(); err != nil {
			err = fmt.Errorf("closing %s %s socket: %w", why, c.origin, err)
			h.log.Warn("handoff: " + err.Error())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// logger returns l, or one that discards every record.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func (h *Handoff) testHook(stage string) {
	if h.hook != nil {
		h.hook(stage)
	}
}

func closeAny(s any) {
	if c, ok := s.(interface{ Close() error }); ok {
		c.Close()
	}
}

// lastOrigin is where the socket the last Listen returned came from.
func (h *Handoff) lastOrigin() origin {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.claimed) == 0 {
		return fresh
	}
	return h.claimed[len(h.claimed)-1].origin
}

// addReceiver registers receive for the connections a predecessor hands
// over that were accepted on the listener info; nil unregisters.
func (h *Handoff) addReceiver(info sockInfo, receive func(net.Conn) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if receive == nil {
		delete(h.receivers, info)
		return
	}
	if h.receivers == nil {
		h.receivers = make(map[sockInfo]func(net.Conn) bool)
	}
	h.receivers[info] = receive
}
