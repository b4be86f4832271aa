//go:build !unix

package handoff

import "errors"

// No SCM_RIGHTS here; NOTIFY_SOCKET is never set either.
func unixRights([]int) ([]byte, error) {
	return nil, errors.New("no SCM_RIGHTS on this OS")
}
