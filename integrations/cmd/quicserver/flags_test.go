package main

import (
	"errors"
	"flag"
	"io"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.steer || cfg.addr != "127.0.0.1:4433" || cfg.shutdownTimeout != 30*time.Second || cfg.handoff != "" {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = parseFlags([]string{"-addr", ":9443", "-handoff", "/run/q/w1.sock", "-steer=false", "-shutdown-timeout", "5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.steer || cfg.addr != ":9443" || cfg.handoff != "/run/q/w1.sock" || cfg.shutdownTimeout != 5*time.Second {
		t.Errorf("parsed: %+v", cfg)
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	for _, args := range [][]string{
		{"extra"},
		{"-shutdown-timeout", "0s"},
		{"-cert", "c.pem"},
		{"-key", "k.pem"},
		{"-nosuchflag"},
	} {
		_, err := parseFlags(args, io.Discard)
		var usage *usageError
		if !errors.As(err, &usage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
		if code := exitCode(err, io.Discard); code != 2 {
			t.Errorf("%q: exit status %d, want 2", args, code)
		}
	}
}
