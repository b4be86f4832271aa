package main

import (
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
)

// TestCheck makes sure that the command never sends load anywhere but to
// loopback, and never runs without a bound.
func TestCheck(t *testing.T) {
	valid := loadgen.Config{Addr: "127.0.0.1:8080", Clients: 64, Timeout: 5 * time.Second, Duration: time.Minute}
	with := func(change func(*loadgen.Config)) loadgen.Config {
		c := valid
		change(&c)
		return c
	}
	for _, tc := range []struct {
		name  string
		cfg   loadgen.Config
		nargs int
		ok    bool
	}{
		{"loopback IPv4", valid, 0, true},
		{"loopback IPv6", with(func(c *loadgen.Config) { c.Addr = "[::1]:8080" }), 0, true},
		{"other loopback address", with(func(c *loadgen.Config) { c.Addr = "127.0.0.2:80" }), 0, true},
		{"no address", with(func(c *loadgen.Config) { c.Addr = "" }), 0, false},
		{"no port", with(func(c *loadgen.Config) { c.Addr = "127.0.0.1" }), 0, false},
		{"name, not an IP", with(func(c *loadgen.Config) { c.Addr = "localhost:8080" }), 0, false},
		{"unspecified address", with(func(c *loadgen.Config) { c.Addr = ":8080" }), 0, false},
		{"remote address", with(func(c *loadgen.Config) { c.Addr = "192.0.2.1:8080" }), 0, false},
		{"no duration", with(func(c *loadgen.Config) { c.Duration = 0 }), 0, false},
		{"no clients", with(func(c *loadgen.Config) { c.Clients = 0 }), 0, false},
		{"no timeout", with(func(c *loadgen.Config) { c.Timeout = 0 }), 0, false},
		{"an argument", valid, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := check(tc.cfg, tc.nargs)
			if tc.ok && err != nil {
				t.Errorf("check(%+v) = %v, want nil", tc.cfg, err)
			}
			if !tc.ok && err == nil {
				t.Errorf("check(%+v) = nil, want an error", tc.cfg)
			}
		})
	}
}
