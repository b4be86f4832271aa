// Package handoff restarts a server without losing a connection: the
// running process (the predecessor) hands its listening sockets to the
// process that replaces it (the successor), which need not be its child.
//
// Closing a listening socket resets every connection waiting in its accept
// queue, even when other sockets share its port through SO_REUSEPORT.
// Handing the socket over instead keeps it open: the successor accepts from
// the very queue the predecessor stops accepting from, so nothing is lost.
// The two processes meet on a unix socket at a path of the caller's choice
// and the sockets travel as SCM_RIGHTS messages; no privilege is needed.
//
// # Life of a server
//
// [Run] is the whole life of one generation, for any server that can serve
// a listener and shut down gracefully:
//
//	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
//	defer stop()
//	cfg := handoff.RunConfig{Config: handoff.Config{Path: "/run/myserver/handoff.sock"}}
//	err := handoff.Run(ctx, cfg, "tcp", ":8080", &http.Server{Handler: h})
//
// The same program serves at the first start and at every restart: start
// the new version with the same Path and the old one returns nil once it
// has answered every connection it accepted, keep-alive ones included.
// Any other server comes in through [Funcs] or a type with Serve and
// Shutdown methods; the module github.com/b93f8b21/reuseport/integrations
// has them for grpc-go and fasthttp. A web framework's server (echo, gin,
// chi) is passed as its *http.Server, never through Funcs with the
// framework's Shutdown: that is plain [http.Server.Shutdown], which loses
// requests on keep-alive connections.
//
// A server with several sockets is one [RunAll]: a [Service] for each
// socket, a [Server] on TCP or a [PacketServer] on UDP, in one handoff
// with one Ready and one stop. DNS on UDP and TCP port 53:
//
//	err := handoff.RunAll(ctx, cfg,
//		handoff.Service{Network: "udp", Address: ":53", PacketServer: udp},
//		handoff.Service{Network: "tcp", Address: ":53", Server: tcp, Sequential: true})
//
// Service.Sequential is for protocols that answer one request at a time
// and read nothing ahead (DNS over TCP, memcached's text protocol): the
// stop hands each connection the client keeps open to the successor, at
// a moment it is idle, instead of closing it with a request on its way.
//
// Run takes these steps, which a server with a life of its own can take
// itself:
//
//	h, err := handoff.Start(ctx, handoff.Config{Path: "/run/myserver/handoff.sock"})
//	...
//	ln, err := h.Listen(ctx, "tcp", ":8080") // inherited, activated or fresh
//	d := drain.NewServer(srv)
//	go d.Serve(ln)
//	if err := h.Ready(); err != nil { ... } // the predecessor, if any, stops accepting
//	<-h.Done()                             // a successor is serving
//	d.Shutdown(ctx)                        // stop accepting, answer what was accepted
//
// Start takes a lock that makes successors take turns, asks the process
// serving on Path for its sockets, and keeps the connection to it open.
// Listen and ListenPacket claim a received socket that matches what they
// are asked for, else bind a fresh one that shares the port (see
// [reuseport.ListenConfig]). Ready closes the received sockets nobody
// claimed, puts the process's own socket in place of Path with an atomic
// rename, tells the predecessor to stop accepting, and releases the lock.
// From then on the process answers its own successor.
//
// Once Done is closed, stop accepting and drain with [drain.Server] or,
// for a server of another kind, stop its accept loop with [drain.Listener]
// and wait for [drain.Listener.WaitClaimed] before its graceful stop, as
// Run does: plain [http.Server.Shutdown] loses requests on every restart
// (see the drain package).
//
// # Failures
//
// A restart never fails for want of a predecessor. When none answers on
// Path (first start, or the predecessor crashed), or the predecessor dies,
// stalls past Config.Timeout, speaks another protocol version or sends
// garbage, the successor logs why (at level Warn, to Config.Logger) and
// binds fresh sockets; these join the
// predecessor's reuseport group, so the port is never left without a
// listener. A predecessor that is still alive then keeps serving until
// something else stops it: nobody told it to stop.
//
// A successor that dies, or fails Ready, before telling the predecessor it
// serves changes nothing for the predecessor: its sockets were only copied,
// and it goes on serving and answering on Path. Nothing a peer sends can
// stop it serving or leak a descriptor.
//
// # Security
//
// Only a process of the same effective user may take the sockets: the
// predecessor checks the uid of every peer on Path with SO_PEERCRED or
// LOCAL_PEERCRED, and the successor checks the predecessor's the same way,
// failing Start with an error that wraps [os.ErrPermission] when another
// user serves Path. The socket file is made mode 0600 whatever the umask.
// Put Path in a directory only that user can write. Processes of the same
// user are trusted: one that takes the lock, or says hello and then stalls,
// delays restarts until it exits.
//
// # systemd
//
// Run and RunAll speak systemd's notification protocol when NOTIFY_SOCKET
// is set (Type=notify): READY=1 with MAINPID once serving, STATUS= at each
// step, STOPPING=1 when the unit stops. With RunConfig.UpgradeSignal set to
// SIGHUP, one unit upgrades in place on `systemctl reload`: the process
// starts its new executable, hands it the sockets and the unit
// (MAINPID=<successor> from the old main process, which the default
// NotifyAccess=main accepts), and drains. Under Type=notify-reload
// (systemd 253) it sends RELOADING=1 first, so that `systemctl reload`
// returns once the new version serves. With Config.FDStore the sockets
// also go to systemd's file descriptor store (FileDescriptorStoreMax=), so
// that a crash of the only process keeps their queues: the restarted
// process gets them back through LISTEN_FDS. See RunAll, and
// examples/systemd in the repository for tested units.
//
// With Config.Activation set, Start also takes sockets passed by systemd
// socket activation (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), and unsets
// those variables. Activation is opt-in, as in go-systemd's activation
// package: without it Start leaves the descriptors and the variables
// alone, for a program that means them for something else. A Start that
// fails leaves them alone too, so that a later Start can take them.
// Listen and ListenPacket prefer an inherited socket, then an activated
// one, matched by its real local address. A .socket unit keeps its sockets open in
// systemd itself, across crashes and restarts of the service: connections
// that arrive while no process serves wait in the queue. Handing over
// between generations still matters there, for the connections the old
// process would otherwise drop when it stops.
//
// # Protocol
//
// Every message is a frame: one type byte, a big-endian uint16 payload
// length (at most 512), the payload. Strings are prefixed by a one-byte
// length.
//
//	hello   (successor → predecessor): "reuseport-handoff", min and max
//	        protocol version (uint16 each), pid (uint32)
//	offer   (predecessor → successor): chosen version (uint16), pid
//	        (uint32), number of sockets n (uint16, at most 1024)
//	socket  (predecessor → successor, n times): network ("tcp4", "tcp6",
//	        "tcp" for dual-stack IPv6, likewise "udp…") and local address
//	        ("127.0.0.1:8080"); the descriptor rides on the frame as
//	        SCM_RIGHTS
//	refuse  (predecessor → successor, instead of an offer): code (1 no
//	        common version, 2 another user, 3 too many sockets) and text
//	ready   (successor → predecessor, empty): sent once the successor's
//	        own socket is at Path
//
// The successor checks every descriptor it receives with getsockname,
// SO_TYPE, SO_ACCEPTCONN and IPV6_V6ONLY against what the message says,
// and receives them close-on-exec. Each step is bounded by Config.Timeout,
// except the wait for ready, which lasts while the successor lives.
//
// # UDP and QUIC
//
// A handoff passes a UDP socket on as it does a listener: the socket stays
// open and in its reuseport group, so the kernel's hash of datagram flows
// onto the group does not change, and the flows of the other sockets, with
// their QUIC connections, stay where they are. A socket that joins or
// leaves the group moves flows between its sockets instead (see
// [reuseport.ListenPacket]): restart the copies of a QUIC server with a
// handoff each, and do not add or remove copies while connections live.
//
// A UDP socket cannot be drained as a listener is. Predecessor and
// successor read the same socket, and each datagram goes to whichever
// reads first, whichever connection it belongs to. So once [Handoff.Done]
// is closed, the predecessor should stop reading and close its
// [net.PacketConn] (the socket stays open in the successor), letting its
// own QUIC connections end: their clients reconnect, to the successor. A
// predecessor that reads on to finish them takes packets of the
// successor's new connections, which then fail. Datagrams queued on the
// socket when the predecessor stops are read by the successor; a plain
// datagram protocol (DNS, syslog, metrics) loses nothing. [RunAll] does
// all this for a [PacketServer]: it stops the server, then closes its own
// descriptor of the socket. For QUIC, set Service.OwnSocket instead: each
// generation binds a socket of its own on the port, package steer keeps
// each connection's packets on its process's socket, and the old
// generation finishes its connections while new ones go to the new one.
//
// # Platforms
//
// Linux, macOS and FreeBSD. Elsewhere [Start] returns an error that wraps
// [errors.ErrUnsupported] and names the OS: golang.org/x/sys exposes no way
// to learn a unix socket peer's user there, and the check is never skipped.
// [Run] and [RunAll] without a Path still serve there: where sockets cannot
// share a port (Windows), they bind a plain socket, log that a second copy
// cannot share it, and serve a single copy that stops gracefully.
package handoff
