package main

import (
	"os"
	"testing"

	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

// envBinary names the server binary the tests run, built once per run.
const envBinary = "WEBSERVER_TEST_BINARY"

// buildServer makes the server binary without -race, so that the load
// measures the server and not the race detector.
func buildServer(t *testing.T) string {
	t.Helper()
	return servercmdtest.Binary(t, envBinary, "webserver", ".")
}

func TestMain(m *testing.M) { os.Exit(servercmdtest.RunTests(m)) }
