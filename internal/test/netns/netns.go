// Package netns holds the few steps a process takes to run inside a private
// network namespace of its own, shared by the tests (internal/test/nstest) and the
// restart benchmark (bench/cmd/benchall): a namespace starts with its
// loopback interface down, and code that writes per-namespace sysctls must
// know for sure it is no longer in the host's namespace.
package netns

// LoopbackUp brings up the loopback interface of the calling process's
// network namespace, which a new namespace starts with down.
func LoopbackUp() error { return loopbackUp() }

// ID names the network namespace of the calling process, such as
// "net:[4026531840]": two processes are in the same namespace exactly when
// their IDs are equal.
func ID() (string, error) { return id() }

// SetSysctl writes a sysctl of the calling process's network namespace,
// such as "net/ipv4/tcp_migrate_req", and reads it back. It refuses when
// that namespace is host (an ID as returned by [ID]), or when host is
// empty, so that a caller that meant to leave the host's namespace and did
// not can never change the host's setting. It is the only code of this
// repository that writes a sysctl.
func SetSysctl(host, name, value string) error { return setSysctl(host, name, value) }
