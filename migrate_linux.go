package reuseport

import (
	"bytes"
	"os"
)

// migrateReqPath is read, not cached: the value may change at run time and
// belongs to the network namespace of the caller. Before Linux 5.14 it is
// missing, which means no migration.
const migrateReqPath = "/proc/sys/net/ipv4/tcp_migrate_req"

func migratesRequests() bool {
	b, err := os.ReadFile(migrateReqPath)
	return err == nil && string(bytes.TrimSpace(b)) == "1"
}
