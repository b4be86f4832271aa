// Package steer keeps every packet of a QUIC connection on the socket that
// owns it while the sockets sharing a UDP port with SO_REUSEPORT join,
// drain, leave and crash, and it needs no privilege to do so.
//
// Without it, Linux hashes each datagram's addresses and ports onto the
// sockets of the group, and rescales the hash whenever the group changes: a
// socket that joins a group of three moves about half the connections of
// the others, and one that leaves moves up to three quarters of them (the
// kernel fills its slot with the last socket). A QUIC connection whose
// packets move reaches a process that has never heard of it, and breaks.
//
// # Mechanism
//
// Each socket of a [Group] is a [Member] with a random 32-bit id, and every
// connection ID it issues ([Member.NewConnectionID]) carries that id,
// hidden by the group's key (see Privacy).
// The group carries one classic BPF program (SO_ATTACH_REUSEPORT_CBPF),
// which the kernel runs on every datagram with the data at the UDP payload
// and whose result picks a socket by its index in the group. The program
// reads the destination connection ID of a QUIC short or long header,
// recovers the id with the group's key, looks it up in a table of
// id → index, and steers the packet there.
// A client's first flight carries a random connection ID of its own
// choosing; the program spreads those over the accepting members only, by
// the first four bytes of that ID, so that each client's retransmissions
// reach the same socket and a draining member gets no new connection. A
// packet it cannot place (not QUIC, or for an id no socket has) gets an
// index past the end of the group, and the kernel then hashes it as it
// would without a program.
//
// No process can ask the kernel for the order of a group's sockets, so
// the Group learns it by probing. From sockets outside the group it sends
// small control packets to the group's port, each asking for one index;
// the program steers each to the socket at that index, whose owner
// answers with its id and state. The first index whose answer repeats an
// id seen at a lower one (the kernel hashed a probe past the end) is the
// size of the group. A Group reconciles (probes, attaches the program for
// what it found, and probes again to verify) when a member joins, drains
// and leaves, and every [Config.ReconcileInterval] in every process, so
// the members of other processes are learnt without any coordination but
// the port itself.
//
// A member's read loop passes the control packets ([IsControl]) to
// [Member.HandleControl]. Their first byte has its two top bits clear, so
// a QUIC stack sets them aside as non-QUIC packets (quic-go's
// Transport.ReadNonQUICPacket). A reply goes only to a well-formed probe
// from this host, is no larger than the probe, and a prober accepts only
// replies that echo its random nonce to its own socket.
//
// # Privileges
//
// None beyond binding the port: attaching a classic BPF program to a
// reuseport group needs no capability (an eBPF SK_REUSEPORT program, such
// as nginx's quic_bpf, needs CAP_BPF), and the kernel lets only sockets of
// the same user into a group.
//
// # Privacy
//
// RFC 9000 (section 5.1) requires that connection IDs carry nothing that
// lets an observer correlate them: a client that migrates to a new path
// uses a new connection ID precisely so that the two paths cannot be
// linked. A connection ID of a member is therefore never its id in the
// clear. Bytes 4 to 7 are a random nonce r, and bytes 0 to 3 are the id
// xor a keyed mixing of r (two rounds of xor, multiplication by an odd key
// word and a fold of the high bits, which classic BPF can compute); the
// remaining bytes are random. Across 10,000 connection IDs of one member
// every byte takes all values, and a group with another key reads other
// ids from them.
//
// The key is [Config.Key], which every process of a group must share.
// Without one, every process of the host derives the same key from the
// kernel's random boot id (/proc/sys/kernel/random/boot_id) and the
// group's port: no coordination is needed, and the key never leaves the
// host, but any process of the host can compute it, and it changes only
// with a reboot. A process whose key differs from the group's is logged
// (probe replies carry a one-byte tag of the key), and the packets of its
// connections are not steered.
//
// The mixing is obfuscation against passive linking, not encryption: an
// observer who collects many connection IDs of a group and knows the
// construction may in principle recover the key, as it could not with
// QUIC-LB's AES-based schemes, which classic BPF cannot compute. The
// member id says only which socket of the server a connection reached.
// Use a Config.Key from a secret that rotates if this matters to you.
//
// # Limits
//
// A socket bound to the port that does not take part (a server that does
// not use this package) never answers probes. The Group reports it through
// [Config.Logger] as silent and gives it no new
// connections, but the kernel's hash may still send it the packets the
// program cannot place.
//
// Probing finds the end of the group by a probe past it, which the kernel
// hashes by the prober's address onto some socket; only a member that
// answers shows the end. When the group ends in sockets that answer no
// probe (bound but not joined yet, as after reuseport.ListenPacketGroup,
// or not taking part), the Group probes from up to 512 source ports to
// reach one. With a of the group's n sockets answering, all of them miss
// with probability (1 - a/n)^512: below one in 10^8 while one socket in
// 28 answers, 3 in 10^4 for one member among 64 sockets. A table found
// short makes [Group.Join] or a reconcile fail ("kept changing"),
// or [Member.Leave] fail, or attach a table that sends the connections of
// the socket the kernel moves to another socket until the next reconcile.
//
// When a member's process crashes, the kernel moves the last socket of the
// group into its slot, and until the next reconcile (within one
// [Config.ReconcileInterval], a second by default) the packets of the
// moved socket's connections may reach another. QUIC resends them; a
// connection survives a second of loss.
//
// [Member.Leave] attaches the table for after the socket has closed, in
// which the last socket has moved into the leaving one's slot; packets
// for the moved socket that arrive in the microseconds between Leave and
// the close reach the closing socket and are lost once.
//
// Processes do not coordinate beyond the probes, and attaching a program
// cannot be made conditional on the one in place, so two changes made by
// different processes (a join, a drain, a leave) close together can race.
// A periodic reconcile that finds the group changed first asks the program
// whether it was built from what it found (a check probe carrying the
// table's digest) and then probes once more, so it leaves alone what the
// process that made a change attached; only a change that lands between
// its last probe and its attach, while the program in place is wrong
// anyway (after a crash), can have it put back, for the milliseconds until
// its verifying probe, a table from before that change. Some packets of
// the sockets the change moved then go astray, and QUIC resends them.
// Changes more than one and a quarter intervals apart never race: a
// periodic reconcile comes every 0.75 to 1.25 intervals, so every process
// has seen the first change by the time of the second.
//
// The program holds at most 1000 members (the kernel runs at most 4096
// instructions). Every process of a group must use the same
// [Config.CIDLen].
//
// Only Linux (4.5 and later) can do this; elsewhere, and under emulators
// that do not pass the socket option on (qemu-user), [Group.Join] returns
// an error that wraps [errors.ErrUnsupported].
package steer
