package nstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func unavailable() string {
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return "this kernel has no network namespaces"
	}
	if os.Geteuid() != 0 {
		if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" {
			return "not root, and unprivileged user namespaces are disabled"
		}
	}
	return ""
}

// sysProcAttr makes the child's network namespace; without root it also
// makes a user namespace, in which the child is root of its own network.
func sysProcAttr() *syscall.SysProcAttr {
	if os.Geteuid() == 0 {
		return &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	}
	return &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWNET | syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
}

// viaUnshare returns cmd run through unshare(1), which makes the namespace
// itself, for where clone(2) refuses namespace flags. qemu-user does: it
// runs the test binaries of other CPUs and fails such a clone with EINVAL.
// unshare is a program of the host, so it runs natively and then executes
// the test binary, which binfmt_misc hands to qemu again.
func viaUnshare(cmd *exec.Cmd) (*exec.Cmd, error) {
	path, err := exec.LookPath("unshare")
	if err != nil {
		return nil, err
	}
	args := []string{"--net"}
	if os.Geteuid() != 0 {
		args = append(args, "--user", "--map-root-user")
	}
	args = append(append(args, "--", cmd.Path), cmd.Args[1:]...)
	alt := exec.Command(path, args...)
	alt.Env = cmd.Env
	// unshare execs the test binary in place, which keeps this.
	alt.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return alt, nil
}

// Sysctl reads a sysctl of the current network namespace.
func Sysctl(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", name))
	return strings.TrimSpace(string(b)), err
}

// lockMachine takes an exclusive lock shared by every test binary of the
// machine, and returns its release. A lock it cannot take is not worth
// failing a test for: it logs why and runs unserialized.
func lockMachine(t testing.TB) (unlock func()) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "reuseport-nstest.lock"), os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		t.Logf("nstest: not serializing with other namespace tests: %v", err)
		return func() {}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Logf("nstest: not serializing with other namespace tests: %v", err)
		return func() {}
	}
	return func() { f.Close() } // closing the only descriptor releases the lock
}
