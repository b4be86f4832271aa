package loadgen

import "errors"

// Plan 9 reports network failures as strings, with no errno to match, so
// these never match and such failures classify as "other". They exist so
// that the package builds on every target.
var (
	errRefused      = errors.New("loadgen: no ECONNREFUSED on plan9")
	errReset        = errors.New("loadgen: no ECONNRESET on plan9")
	errBrokenPipe   = errors.New("loadgen: no EPIPE on plan9")
	errAddrNotAvail = errors.New("loadgen: no EADDRNOTAVAIL on plan9")
)
