package steer

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strings"
)

// memberState is what a member of a group does with new connections.
type memberState uint8

const (
	// stSilent marks a slot of the group whose socket did not answer probes:
	// a socket that does not take part, such as a plain server sharing
	// the port. It gets no new connections from the program.
	stSilent memberState = iota
	// stAccepting members get a share of the clients' first packets.
	stAccepting
	// stDraining members get no new connections; the packets of their own
	// connections keep reaching them.
	stDraining
)

// String returns "silent", "accepting" or "draining".
func (s memberState) String() string {
	switch s {
	case stSilent:
		return "silent"
	case stAccepting:
		return "accepting"
	case stDraining:
		return "draining"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// A slotInfo is one socket of the group's socket array, as probing found it.
type slotInfo struct {
	// ID is the member's id. A Silent slot keeps the id it had at the
	// last reconcile, if any, so that a member slow to answer probes
	// keeps its connections; otherwise it is 0.
	ID    uint32
	State memberState
	Mine  bool // the member belongs to this Group
}

// A slotTable lists the sockets of a group in the kernel's order: the program
// steers a packet to a socket by its index here.
type slotTable []slotInfo

// String lists the slots in order as id:state, with * after this Group's
// own members, for logs.
func (t slotTable) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range t {
		if i > 0 {
			b.WriteByte(' ')
		}
		if s.State == stSilent && s.ID == 0 {
			b.WriteString("silent")
			continue
		}
		fmt.Fprintf(&b, "%08x:%s", s.ID, s.State)
		if s.Mine {
			b.WriteString("*")
		}
	}
	b.WriteByte(']')
	return b.String()
}

// slotOf returns the index of the member id, or -1.
func (t slotTable) slotOf(id uint32) int {
	for i, s := range t {
		if s.ID != 0 && s.ID == id {
			return i
		}
	}
	return -1
}

// equal reports whether t and u map the same ids to the same slots in the
// same states.
func (t slotTable) equal(u slotTable) bool {
	if len(t) != len(u) {
		return false
	}
	for i := range t {
		if t[i].ID != u[i].ID || t[i].State != u[i].State {
			return false
		}
	}
	return true
}

// afterClose returns the table as the kernel will have it once the socket
// in slot i closes: it moves the last socket into the freed slot and
// shrinks the array by one (net/core/sock_reuseport.c,
// __reuseport_detach_sock).
func (t slotTable) afterClose(i int) slotTable {
	u := append(slotTable(nil), t...)
	last := len(u) - 1
	u[i] = u[last]
	return u[:last]
}

// digest returns a non-zero 32-bit digest of what the program built from t
// for connection IDs of cidLen bytes depends on: the ids, their slots and
// states. A check probe carries it, and the program compares it with its
// own (see Group.installed).
func (t slotTable) digest(cidLen int, k key) uint32 {
	h := fnv.New32a()
	var b [6]byte
	binary.BigEndian.PutUint32(b[:], uint32(len(t)))
	b[4] = byte(cidLen)
	h.Write(b[:5])
	for _, w := range k {
		binary.BigEndian.PutUint32(b[:], w)
		h.Write(b[:4])
	}
	for _, s := range t {
		binary.BigEndian.PutUint32(b[:], s.ID)
		b[4] = byte(s.State)
		h.Write(b[:5])
	}
	if d := h.Sum32(); d != 0 {
		return d
	}
	return 1
}
