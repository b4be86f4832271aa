//go:build !linux

package nstest

import (
	"errors"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
)

func unavailable() string { return "network namespaces are Linux only, this is " + runtime.GOOS }

func sysProcAttr() *syscall.SysProcAttr { return nil }

// Sysctl is Linux only.
func Sysctl(name string) (string, error) { return "", errors.ErrUnsupported }

func viaUnshare(*exec.Cmd) (*exec.Cmd, error) { return nil, errors.ErrUnsupported }

func lockMachine(testing.TB) (unlock func()) { return func() {} }
