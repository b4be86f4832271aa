package nginx

import "syscall"

// sysProcAttr puts nginx in a process group of its own, which killGroup
// can reach, and has the kernel kill it if the process that started it
// dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
