package reuseport

// MigratesRequests reports whether the kernel moves the connections waiting
// in a closing listener's accept queue to another socket of its group, rather
// than resetting them. On Linux 5.14 and later that is the per-network-namespace
// sysctl net.ipv4.tcp_migrate_req (default 0).
//
// Migration is what limits the loss when a socket really leaves its group (a
// crash, or scaling down from N workers to N-1): in measurements it cut the
// failed requests of rolling restarts by more than 1000 times, but not to
// zero, because a connection can still race the close. A restart loses
// nothing only when the socket never leaves the group: see the handoff
// package. Where the OS has no such setting the error wraps
// [errors.ErrUnsupported].
func MigratesRequests() (bool, error) {
	return migratesRequests()
}
