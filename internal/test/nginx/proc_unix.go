//go:build unix

package nginx

import (
	"os"
	"syscall"
)

// quit asks nginx to finish the requests it has and exit.
func quit(p *os.Process) { p.Signal(syscall.SIGQUIT) }

// killGroup kills nginx's master and its workers, which share its
// process group (see sysProcAttr).
func killGroup(p *os.Process) { syscall.Kill(-p.Pid, syscall.SIGKILL) }
