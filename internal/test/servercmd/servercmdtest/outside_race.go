package servercmdtest

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/nstest"
)

// OutsideRace runs the calling test in the test binary of its package
// built without -race, named name, when the running one has the race
// detector, and reports that binary's result as the test's: it returns
// true once that has run (the caller returns at once), and false where the
// caller is to go on with its body.
//
// It is for load tests whose clients run in the test binary: with the race
// detector on a loaded 2-core machine they fall so far behind that the
// tests measure the detector (gRPC clients making a ClientConn per RPC ran
// 4 times slower, and the controls saw no loss; quic-go clients missed
// their deadlines). What -race would check there, the clients' own code,
// is the least interesting part; the packages under test have race-checked
// tests of their own.
func OutsideRace(t *testing.T, name string) bool {
	t.Helper()
	if !raceEnabled || nstest.InChild() {
		return false
	}
	bin := Build(t, name, ".", "test", "-c")
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).Round(time.Second).String())
	}
	cmd := exec.Command(bin, args...)
	// The binary runs its tests in the package's directory, as go test
	// would, for the builds they make.
	cmd.Dir, _ = os.Getwd()
	out, err := cmd.CombinedOutput()
	text := string(out)
	switch {
	case err != nil:
		t.Fatalf("%s built without -race: %v\n%s", t.Name(), err, text)
	case strings.Contains(text, "--- SKIP: "+t.Name()+" "):
		t.Skipf("skipped when built without -race:\n%s", text)
	case !strings.Contains(text, "--- PASS: "+t.Name()+" "):
		t.Fatalf("the test binary built without -race did not run %s:\n%s", t.Name(), text)
	}
	t.Logf("ran in the test binary built without -race:\n%s", text)
	return true
}
