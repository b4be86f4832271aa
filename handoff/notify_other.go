//go:build !unix

package handoff

import "errors"

// No systemd here: NOTIFY_SOCKET is never set.
func sendNotify(string, []byte, []int) error {
	return errors.New("no unix datagram sockets on this OS")
}
