package rolling

import (
	"fmt"
	"os/exec"
	"path/filepath"
)

// ExampleReady is the line the example server (examples/httpserver) logs
// once it serves: the ReadyLine for [ExampleServer].
const ExampleReady = "listening on"

// ExampleServer is a Config.Command for the example server built as bin,
// serving addr and leaving with -shutdown shutdown ("drain" or "stdlib")
// within 5s. With handoffDir set, each worker's generations hand their
// sockets to the next through a path of that worker's own in handoffDir.
func ExampleServer(bin, addr, shutdown, handoffDir string) func(worker, generation int) *exec.Cmd {
	return Server(bin, addr, handoffDir, "-shutdown", shutdown)
}

// Server is a Config.Command for a server command of this repository (one
// with the flags of internal/test/servercmd, such as examples/httpserver) built
// as bin: it serves addr, leaves within 5s, and takes args besides. With
// handoffDir set, each worker's generations hand their sockets to the next
// through a path of that worker's own in handoffDir, wN.sock for worker
// N-1. Such a server logs ExampleReady once it serves.
func Server(bin, addr, handoffDir string, args ...string) func(worker, generation int) *exec.Cmd {
	return func(worker, _ int) *exec.Cmd {
		a := []string{"-addr", addr, "-shutdown-timeout", "5s"}
		if handoffDir != "" {
			a = append(a, "-handoff", filepath.Join(handoffDir, fmt.Sprintf("w%d.sock", worker+1)))
		}
		return exec.Command(bin, append(a, args...)...)
	}
}
