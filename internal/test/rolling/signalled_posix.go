//go:build !plan9

package rolling

import (
	"errors"
	"os/exec"
	"syscall"
)

// signalled tells an exit caused by the harness's own SIGTERM/SIGKILL at
// the end of a run from a crash.
func signalled(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && (ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGKILL)
}
