//go:build !linux

package emu

func detect() (string, bool) { return "", false }
