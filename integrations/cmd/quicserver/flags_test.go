package main

import (
	"errors"
	"flag"
	"io"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/servercmd"
)

func TestFlags(t *testing.T) {
	f, err := command.Parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !own.steer || f.Addr != "127.0.0.1:4433" || f.ShutdownTimeout != 30*time.Second || f.Handoff != "" {
		t.Errorf("defaults: %+v, steer %v", f, own.steer)
	}
	f, err = command.Parse([]string{"-addr", ":9443", "-handoff", "/run/q/w1.sock", "-steer=false", "-shutdown-timeout", "5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if own.steer || f.Addr != ":9443" || f.Handoff != "/run/q/w1.sock" || f.ShutdownTimeout != 5*time.Second {
		t.Errorf("parsed: %+v, steer %v", f, own.steer)
	}
	if _, err := command.Parse([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	for _, args := range [][]string{
		{"-cert", "c.pem"},
		{"-key", "k.pem"},
		{"-shutdown", "drain"}, // HTTP/3's graceful shutdown is the only way
	} {
		var usage *servercmd.UsageError
		if _, err := command.Parse(args, io.Discard); !errors.As(err, &usage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
