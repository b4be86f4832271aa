//go:build !unix

package nginx

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// quit stops nginx at once: without signals there is no graceful way.
func quit(p *os.Process) { p.Kill() }

// killGroup kills nginx's master; its workers must notice by themselves.
func killGroup(p *os.Process) { p.Kill() }
