//go:build race

package systest

// raceFlags builds the server with the race detector when the tests have
// it, so that a data race in the server's draining and handoff fails them.
var raceFlags = []string{"-race"}
