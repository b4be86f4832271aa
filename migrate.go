package reuseport

// MigratesRequests reports whether the kernel moves the connections waiting
// in a closing listener's accept queue to another socket of its group, rather
// than resetting them. On Linux 5.14 and later that is the per-network-namespace
// sysctl net.ipv4.tcp_migrate_req (default 0). Where the OS has no such
// setting the error wraps [errors.ErrUnsupported].
//
// Migration narrows the loss when a socket really leaves its group (a crash,
// or scaling down from N workers to N-1) but does not end it: a connection
// can still race the close. A restart loses nothing only when the socket
// never leaves the group: see the handoff package.
func MigratesRequests() (bool, error) {
	return migratesRequests()
}
