package steer

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// mustNewGroup is NewGroup for a cfg that must be valid.
func mustNewGroup(t testing.TB, cfg Config) *Group {
	t.Helper()
	g, err := NewGroup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// testLog is a Logger that writes to the test's log and keeps what it
// wrote, for tests that look for a record.
type testLog struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer
}

func newTestLog(t testing.TB) *testLog { return &testLog{t: t} }

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("%s", bytes.TrimSuffix(p, []byte("\n")))
	return l.b.Write(p)
}

func (l *testLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testLogger is a Logger that writes to the test's log.
func testLogger(t testing.TB) *slog.Logger { return newTestLog(t).logger() }
