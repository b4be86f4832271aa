// Package wrk runs the wrk HTTP load generator and reads its results.
package wrk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Config is one wrk run.
type Config struct {
	URL      string
	Threads  int
	Conns    int
	Duration time.Duration
	// Close sends "Connection: close" with every request, so that each
	// request gets a connection of its own: wrk reconnects whenever a
	// response says the connection will not be kept alive.
	Close bool
	// Method is the request method; "" means GET. Body, if not empty, is
	// sent with every request. wrk takes both from a Lua script, which
	// Run writes.
	Method string
	Body   string
}

// Script is the Lua that sets c's method and body, or "" if c needs none.
func (c Config) Script() string {
	var b strings.Builder
	if c.Method != "" {
		fmt.Fprintf(&b, "wrk.method = %s\n", luaQuote(c.Method))
	}
	if c.Body != "" {
		fmt.Fprintf(&b, "wrk.body = %s\n", luaQuote(c.Body))
		b.WriteString(`wrk.headers["Content-Type"] = "application/octet-stream"` + "\n")
	}
	return b.String()
}

// luaQuote makes s a Lua string literal that holds no single quote, so
// that it can also go inside one in a shell command.
func luaQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := range len(s) {
		c := s[i]
		if c >= ' ' && c <= '~' && c != '"' && c != '\\' && c != '\'' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\%03d", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Args are wrk's arguments for c, without the script.
func (c Config) Args() []string {
	args := []string{
		fmt.Sprintf("-t%d", c.Threads),
		fmt.Sprintf("-c%d", c.Conns),
		fmt.Sprintf("-d%s", c.Duration),
		"--latency",
	}
	if c.Close {
		args = append(args, "-H", "Connection: close")
	}
	return append(args, c.URL)
}

// Command is the shell command (bash) that repeats the run. A script that
// sets the method and body goes in through process substitution.
func (c Config) Command() string {
	var b strings.Builder
	b.WriteString("wrk")
	if sc := c.Script(); sc != "" {
		// Lua statements may share a line; echo leaves backslashes alone.
		b.WriteString(" -s <(echo '" + strings.TrimSpace(strings.ReplaceAll(sc, "\n", " ")) + "')")
	}
	for _, a := range c.Args() {
		if strings.ContainsAny(a, " :") && !strings.Contains(a, "://") {
			a = "'" + a + "'"
		}
		b.WriteString(" " + a)
	}
	return b.String()
}

// Result is what wrk measured.
type Result struct {
	Requests int64
	Bytes    int64
	Duration time.Duration
	Errors   Errors
	Mean     time.Duration
	P50      time.Duration
	P90      time.Duration
	P99      time.Duration
	P999     time.Duration
	Max      time.Duration
	// Output is wrk's own report, for the record.
	Output string
}

// Errors are wrk's socket error counts and its count of non-2xx/3xx
// responses.
type Errors struct {
	Connect, Read, Write, Timeout, Status int64
}

// Total is the sum of all errors.
func (e Errors) Total() int64 { return e.Connect + e.Read + e.Write + e.Timeout + e.Status }

// Socket is the sum of the socket errors: all but Status.
func (e Errors) Socket() int64 { return e.Connect + e.Read + e.Write + e.Timeout }

// String lists the errors, as wrk's report does.
func (e Errors) String() string {
	return fmt.Sprintf("non-2xx/3xx=%d connect=%d read=%d write=%d timeout=%d", e.Status, e.Connect, e.Read, e.Write, e.Timeout)
}

// RPS is requests per second.
func (r Result) RPS() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Duration.Seconds()
}

// String is a one-line summary for logs.
func (r Result) String() string {
	return fmt.Sprintf("requests=%d (%.1f req/s over %v) %v latency p50=%v p99=%v p99.9=%v max=%v",
		r.Requests, r.RPS(), r.Duration.Round(time.Millisecond), r.Errors, r.P50, r.P99, r.P999, r.Max)
}

// Available reports whether wrk can be run.
func Available() error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is not installed (on Debian: apt-get install -y wrk): %w", err)
	}
	return nil
}

// Version is wrk's first line of version output.
func Version() string {
	out, _ := exec.Command("wrk", "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// report is a wrk script whose done hook prints the numbers as one JSON line
// that the text report does not give exactly (microseconds, error kinds).
const report = `done = function(summary, latency, requests)
  io.write(string.format("` + marker + `{\"duration_us\":%d,\"requests\":%d,\"bytes\":%d,\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d,\"mean_us\":%f,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"p999_us\":%d,\"max_us\":%d}\n",
    summary.duration, summary.requests, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`

const marker = "BENCHALL-WRK "

type reported struct {
	DurationUS int64   `json:"duration_us"`
	Requests   int64   `json:"requests"`
	Bytes      int64   `json:"bytes"`
	Connect    int64   `json:"connect"`
	Read       int64   `json:"read"`
	Write      int64   `json:"write"`
	Status     int64   `json:"status"`
	Timeout    int64   `json:"timeout"`
	MeanUS     float64 `json:"mean_us"`
	P50US      int64   `json:"p50_us"`
	P90US      int64   `json:"p90_us"`
	P99US      int64   `json:"p99_us"`
	P999US     int64   `json:"p999_us"`
	MaxUS      int64   `json:"max_us"`
}

// Run runs wrk once. wrk stops by itself after c.Duration; ctx, or twice
// the duration plus ten seconds, kills it earlier.
func Run(ctx context.Context, c Config) (Result, error) {
	if c.Threads < 1 || c.Conns < c.Threads || c.Duration < time.Second {
		return Result{}, fmt.Errorf("wrk: want threads >= 1, conns >= threads and a duration of at least 1s, got %+v", c)
	}
	dir, err := os.MkdirTemp("", "wrk-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "report.lua")
	if err := os.WriteFile(script, []byte(c.Script()+report), 0o644); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*c.Duration+10*time.Second)
	defer cancel()
	args := append([]string{"-s", script}, c.Args()...)
	cmd := exec.CommandContext(ctx, "wrk", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("%s: %w\n%s%s", c.Command(), err, stdout.String(), stderr.String())
	}
	text, js, found := strings.Cut(stdout.String(), marker)
	if !found {
		return Result{}, fmt.Errorf("%s: no %q line in wrk's output:\n%s", c.Command(), marker, stdout.String())
	}
	var r reported
	if err := json.NewDecoder(strings.NewReader(js)).Decode(&r); err != nil {
		return Result{}, fmt.Errorf("%s: reading wrk's report: %w", c.Command(), err)
	}
	if r.Requests == 0 {
		return Result{}, errors.New(c.Command() + ": wrk completed no request:\n" + text)
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return Result{
		Requests: r.Requests,
		Bytes:    r.Bytes,
		Duration: us(r.DurationUS),
		Errors:   Errors{Connect: r.Connect, Read: r.Read, Write: r.Write, Timeout: r.Timeout, Status: r.Status},
		Mean:     time.Duration(r.MeanUS * float64(time.Microsecond)),
		P50:      us(r.P50US),
		P90:      us(r.P90US),
		P99:      us(r.P99US),
		P999:     us(r.P999US),
		Max:      us(r.MaxUS),
		Output:   strings.TrimSpace(text),
	}, nil
}
