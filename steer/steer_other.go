//go:build !linux

package steer

import "runtime"

var sys platform = unsupported{runtime.GOOS}
