//go:build unix && !linux

package nginx

import "syscall"

// sysProcAttr puts nginx in a process group of its own, which killGroup
// can reach.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
