package emu

import (
	"os"
	"runtime"
	"strings"
)

// natives lists, for each GOARCH, the kernel architectures that run its
// binaries without an emulator, 32-bit compat modes included; a trailing *
// matches any suffix (armv6l, armv7l).
var natives = map[string][]string{
	"386":      {"i386", "i486", "i586", "i686", "x86_64"},
	"amd64":    {"x86_64"},
	"arm":      {"arm*", "aarch64"},
	"arm64":    {"aarch64"},
	"loong64":  {"loongarch64"},
	"mips":     {"mips", "mips64"},
	"mipsle":   {"mips", "mips64"},
	"mips64":   {"mips64"},
	"mips64le": {"mips64"},
	"ppc64":    {"ppc64"},
	"ppc64le":  {"ppc64le"},
	"riscv64":  {"riscv64"},
	"s390x":    {"s390x"},
}

func detect() (string, bool) {
	b, err := os.ReadFile("/proc/sys/kernel/arch")
	if err != nil {
		return "", false
	}
	return classify(strings.TrimSpace(string(b)), runtime.GOARCH)
}

func classify(kernelArch, goarch string) (string, bool) {
	names, known := natives[goarch]
	if kernelArch == "" || !known {
		return kernelArch, false
	}
	for _, n := range names {
		if prefix, ok := strings.CutSuffix(n, "*"); ok && strings.HasPrefix(kernelArch, prefix) || n == kernelArch {
			return kernelArch, false
		}
	}
	return kernelArch, true
}
