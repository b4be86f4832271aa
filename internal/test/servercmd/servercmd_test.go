package servercmd_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/servercmd"
)

var command = servercmd.Command{
	Name:          "testserver",
	Summary:       "Serve tests.",
	Addr:          "127.0.0.1:1",
	Shutdowns:     []string{"drain", "graceful", "stop"},
	ShutdownUsage: "how to stop",
}

func TestParse(t *testing.T) {
	tests := []struct {
		args    []string
		want    servercmd.Flags
		wantErr string // in the error and on stderr; "" for none
	}{
		{nil, servercmd.Flags{Addr: "127.0.0.1:1", ShutdownTimeout: 30 * time.Second, Shutdown: "drain"}, ""},
		{[]string{"-addr", ":2", "-handoff", "/h", "-shutdown-timeout", "1s", "-shutdown", "stop"}, servercmd.Flags{Addr: ":2", Handoff: "/h", ShutdownTimeout: time.Second, Shutdown: "stop"}, ""},
		{[]string{"-shutdown", "later"}, servercmd.Flags{}, `-shutdown must be drain, graceful or stop, got "later"`},
		{[]string{"-shutdown-timeout", "0s"}, servercmd.Flags{}, "-shutdown-timeout must be positive, got 0s"},
		{[]string{"extra"}, servercmd.Flags{}, `unexpected argument "extra": testserver takes flags only`},
		{[]string{"-nosuch"}, servercmd.Flags{}, "flag provided but not defined: -nosuch"},
	}
	for _, tt := range tests {
		var stderr strings.Builder
		got, err := command.Parse(tt.args, &stderr)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
			}
			continue
		}
		var usage *servercmd.UsageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Parse(%q): %v, want a *UsageError saying %q", tt.args, err, tt.wantErr)
		}
		if out := stderr.String(); !strings.Contains(out, tt.wantErr) || !strings.Contains(out, "usage: testserver [flags]\n\nServe tests.") {
			t.Errorf("Parse(%q) printed %q, want the error and the usage", tt.args, out)
		}
	}
}

func TestRun(t *testing.T) {
	if err := command.Run(t.Context(), []string{"-h"}, io.Discard, nil); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("Run -h: %v, want flag.ErrHelp", err)
	}
	var stderr strings.Builder
	want := errors.New("served")
	err := command.Run(t.Context(), []string{"-shutdown", "graceful"}, &stderr, func(_ context.Context, f servercmd.Flags, logger *log.Logger) error {
		if f.Shutdown != "graceful" {
			t.Errorf("serve got -shutdown %q", f.Shutdown)
		}
		logger.Print("hello")
		return want
	})
	if !errors.Is(err, want) {
		t.Errorf("Run returned %v, want serve's error", err)
	}
	if wantLine := fmt.Sprintf("testserver: pid=%d hello\n", os.Getpid()); stderr.String() != wantLine {
		t.Errorf("serve logged %q, want %q", stderr.String(), wantLine)
	}
}

// TestMoreFlags: a command with flags of its own and one way of stopping,
// which then has no -shutdown.
func TestMoreFlags(t *testing.T) {
	var level int
	c := servercmd.Command{
		Name: "other", Summary: "Serve more.", Addr: "127.0.0.1:1",
		MoreFlags: func(fs *flag.FlagSet) func() error {
			fs.IntVar(&level, "level", 1, "how much")
			return func() error {
				if level < 0 {
					return errors.New("-level must not be negative")
				}
				return nil
			}
		},
	}
	got, err := c.Parse([]string{"-level", "3"}, io.Discard)
	if err != nil || level != 3 || got.Shutdown != "" {
		t.Errorf("Parse -level 3 = %+v, %v, level %d; want level 3 and no -shutdown", got, err, level)
	}
	for _, args := range [][]string{{"-level", "-1"}, {"-shutdown", "drain"}} {
		var usage *servercmd.UsageError
		if _, err := c.Parse(args, io.Discard); !errors.As(err, &usage) {
			t.Errorf("Parse(%q): %v, want a *UsageError", args, err)
		}
	}
}
