package reuseport_test

import "errors"

// Plan 9 cannot share ports, so the tests that expect these skip there.
var (
	errAddrInUse    = errors.New("address in use")
	errAddrNotAvail = errors.New("address not available")
)
