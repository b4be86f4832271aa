//go:build !unix

package main

import (
	"os"
	"runtime"
)

// hangup is nil: this OS has no SIGHUP to upgrade on.
var hangup os.Signal

const noHangup = "there is no SIGHUP on " + runtime.GOOS
