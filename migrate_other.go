//go:build !linux

package reuseport

// migratesRequests is false where the OS has no accept-queue migration.
func migratesRequests() bool { return false }
