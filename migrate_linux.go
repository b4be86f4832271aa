package reuseport

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// migrateReqPath is read, not cached: the value may change at run time and
// belongs to the network namespace of the caller.
const migrateReqPath = "/proc/sys/net/ipv4/tcp_migrate_req"

func migratesRequests() (bool, error) {
	b, err := os.ReadFile(migrateReqPath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reuseport: %s is missing (Linux 5.14 or later has it): %w", migrateReqPath, errors.ErrUnsupported)
	}
	if err != nil {
		return false, err
	}
	switch v := strings.TrimSpace(string(b)); v {
	case "0":
		return false, nil
	case "1":
		return true, nil
	default:
		return false, fmt.Errorf("reuseport: unexpected value %q in %s", v, migrateReqPath)
	}
}
