//go:build unix

package main

import (
	"os"
	"syscall"
)

// hangup is the signal -upgrade-on-hup upgrades on.
var hangup os.Signal = syscall.SIGHUP

const noHangup = ""
