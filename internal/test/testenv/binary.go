package testenv

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// ShareBinary copies the executable at path into a new temporary directory
// that every user may enter, and returns the copy's path, so that a test
// running as root can start it as another uid: the test binary go test
// builds sits in a directory only its owner may enter. The copy is removed
// when t ends. Where some directory above the copy is not searchable by
// others, ShareBinary ends t through SkipOrFail with RequireNetns.
func ShareBinary(t testing.TB, path string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "reuseport-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			SkipOrFail(t, RequireNetns, "other users cannot reach the temporary directory %s: %s is not searchable by others (set TMPDIR elsewhere)", dir, d)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	src, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cp := filepath.Join(dir, filepath.Base(path))
	dst, err := os.OpenFile(cp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return cp
}

// ShareTestBinary is ShareBinary for the running test binary.
func ShareTestBinary(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return ShareBinary(t, exe)
}
