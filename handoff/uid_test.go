//go:build linux

package handoff_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/b93f8b21/reuseport/internal/test/testenv"
)

// nobody is the uid and gid the other user's processes run as.
const nobody = 65534

// TestOtherUser runs processes as another user against a predecessor
// running as root. With the default modes they cannot even reach it. With
// Path and its lock opened to everyone, they reach it, but the predecessor
// refuses to hand anything over (checked with a hand-made hello), and the
// package's own successor refuses a predecessor of another user. The
// predecessor keeps serving throughout, with its descriptor count
// unchanged.
func TestOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, testenv.RequireNetns, "needs root to run a process as another user")
	}
	// A directory the other user can traverse, holding Path and a copy of
	// the test binary it can execute.
	dir, err := os.MkdirTemp("", "handoff-uid")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "handoff.test")
	copyFile(t, os.Args[0], bin)
	path := filepath.Join(dir, "h.sock")

	p := start(t, path, newLog(t, "pred"))
	ln := listen(t, p, "tcp", "127.0.0.1:0")
	ready(t, p)
	fds := openFDs(t)

	asNobody := func(t *testing.T, role string) event {
		t.Helper()
		cmd := exec.Command(bin)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), envRole+"="+role, envPath+"="+path, envListen+"=tcp 127.0.0.1:0")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		pr := runProc(t, cmd)
		e, ok := <-pr.events
		code := pr.wait(step)
		if !ok {
			t.Fatalf("%s as uid %d exited with code %d and no report; stderr:\n%s", role, nobody, code, pr.stderr.String())
		}
		stillServing(t, ln)
		settleFDs(t, fds)
		if isDone(p) {
			t.Fatal("Done closed")
		}
		return e
	}

	t.Run("default modes", func(t *testing.T) {
		if e := asNobody(t, "server"); e.Ev != "error" || !e.Permission {
			t.Fatalf("successor as uid %d: %+v, want a permission error", nobody, e)
		}
		if e := asNobody(t, "hello"); e.Ev != "error" || !e.Permission {
			t.Fatalf("hello as uid %d: %+v, want a permission error", nobody, e)
		}
	})

	for _, f := range []string{path, path + ".lock"} {
		if err := os.Chmod(f, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("predecessor refuses", func(t *testing.T) {
		e := asNobody(t, "hello")
		if e.Ev != "result" || !e.Refused || e.FDs != 0 {
			t.Fatalf("hello as uid %d: %+v, want a refusal without descriptors", nobody, e)
		}
	})
	t.Run("successor refuses", func(t *testing.T) {
		e := asNobody(t, "server")
		if e.Ev != "error" || !e.Permission {
			t.Fatalf("successor as uid %d: %+v, want a permission error", nobody, e)
		}
		if n := strings.Count(e.Msg, "handoff:"); n != 1 || !strings.Contains(e.Msg, "the peer runs as uid") {
			t.Errorf("successor as uid %d: error %q names the package %d times; want once, and the peer's uid", nobody, e.Msg, n)
		}
	})

	s := start(t, path, newLog(t, "succ"))
	listen(t, s, "tcp", ln.Addr().String())
	wantOrigins(t, s, "inherited")
	ready(t, s)
	waitDone(t, p)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
