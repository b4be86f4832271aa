// Package emu tells a test whether it runs under user-mode emulation, such
// as qemu-user started through binfmt_misc, which is how CI runs the tests
// of other CPUs. An emulator translates system calls, and where its
// translation differs from the kernel (descriptors passed with SCM_RIGHTS,
// namespace flags of clone) a test may need to know, and say so.
package emu

// Detect reports whether this binary runs under user-mode emulation, and
// the kernel's own architecture when it is known. It says true only when
// the kernel tells its architecture in /proc/sys/kernel/arch (recent Linux
// kernels do; qemu-user passes it through unchanged) and that architecture
// cannot run this binary natively. It does not trust uname(2), which
// qemu-user fakes. It never says true on the hardware the binary was built
// for, nor on a kernel that runs it in a compat mode (arm on arm64).
func Detect() (kernelArch string, emulated bool) { return detect() }
