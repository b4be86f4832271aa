// Package systest holds the system tests of reuseport: the example server
// (examples/httpserver), built from source, run as real processes in a
// private network namespace each, through the faults a deployment meets
// rather than the restarts it plans.
//
//   - Crashes (crash_linux_test.go): workers killed with SIGKILL under
//     load, with tcp_migrate_req 0 and 1 and with sockets held by a parent
//     as systemd socket activation holds them; and a crashed worker's
//     queue, parked, kept for its replacement or moved to a sibling.
//   - Soaks (soak_linux_test.go): long chains of handoffs, and thousands of
//     handoffs that never complete, checked for leaked descriptors,
//     threads and memory. REUSEPORT_SOAK lengthens them.
//   - Descriptor exhaustion (emfile_linux_test.go): a server out of file
//     descriptors backs off instead of spinning and recovers.
//
// The package has no API; its tests need Linux and a network namespace
// (see internal/test/nstest), and go test -short skips the long ones. The
// example's own promises (ports shared, lossless restarts under load,
// behind proxies) are tested beside it, in examples/httpserver.
package systest
