//go:build !race

package systest

// raceFlags: the tests are built without the race detector, and so is the
// server.
var raceFlags []string
