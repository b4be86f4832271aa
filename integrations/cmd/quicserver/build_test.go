package main

import (
	"os"
	"testing"

	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

// envBinary passes the server binary built outside the namespace to the
// test that runs inside it.
const envBinary = "QUICSERVER_TEST_BINARY"

// buildServer makes the server binary, outside the namespace (where the
// module cache is), and without -race, so that the load measures the
// steering and not the race detector.
func buildServer(t *testing.T) {
	t.Helper()
	servercmdtest.Binary(t, envBinary, "quicserver", ".")
}

func TestMain(m *testing.M) { os.Exit(servercmdtest.RunTests(m)) }
