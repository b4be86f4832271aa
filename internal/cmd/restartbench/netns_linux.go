package main

import (
	"os/exec"
	"syscall"
)

// newNetns makes cmd start in a network namespace of its own, and die
// with this process.
func newNetns(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	return nil
}
