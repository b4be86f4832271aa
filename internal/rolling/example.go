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
	return func(worker, _ int) *exec.Cmd {
		args := []string{"-addr", addr, "-shutdown", shutdown, "-shutdown-timeout", "5s"}
		if handoffDir != "" {
			args = append(args, "-handoff", filepath.Join(handoffDir, fmt.Sprintf("w%d.sock", worker+1)))
		}
		return exec.Command(bin, args...)
	}
}
