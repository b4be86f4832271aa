package emu

import (
	"runtime"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		kernel, goarch string
		emulated       bool
	}{
		{"x86_64", "amd64", false},
		{"x86_64", "386", false},
		{"aarch64", "arm64", false},
		{"aarch64", "arm", false}, // a 32-bit userland on a 64-bit kernel
		{"armv7l", "arm", false},
		{"armv6l", "arm", false},
		{"mips64", "mipsle", false},
		{"x86_64", "mipsle", true},
		{"mips", "mipsle", false},
		{"ppc64le", "ppc64le", false},
		{"ppc64le", "ppc64", true},
		{"x86_64", "arm64", true},
		{"x86_64", "arm", true},
		{"x86_64", "s390x", true},
		{"x86_64", "riscv64", true},
		{"aarch64", "amd64", true},
		{"", "arm64", false},      // the kernel does not say
		{"x86_64", "wasm", false}, // not a GOARCH this package knows
		{"sparc64", "sparc64", false},
	} {
		if _, got := classify(tc.kernel, tc.goarch); got != tc.emulated {
			t.Errorf("kernel %q, GOARCH %s: emulated = %v, want %v", tc.kernel, tc.goarch, got, tc.emulated)
		}
	}
}

// TestDetect logs what Detect says here; under qemu-user in CI the log
// shows the host's architecture beside the binary's.
func TestDetect(t *testing.T) {
	arch, emulated := Detect()
	t.Logf("GOARCH %s, kernel architecture %q, emulated: %v", runtime.GOARCH, arch, emulated)
	if arch == runtime.GOARCH || (runtime.GOARCH == "amd64" && arch == "x86_64") {
		if emulated {
			t.Errorf("Detect says emulated on its own architecture")
		}
	}
}
