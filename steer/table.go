package steer

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strings"
)

// State is what a member of a group does with new connections.
type State uint8

const (
	// Silent marks a slot of the group whose socket did not answer probes:
	// a socket that does not take part, such as a plain server sharing
	// the port. It gets no new connections from the program.
	Silent State = iota
	// Accepting members get a share of the clients' first packets.
	Accepting
	// Draining members get no new connections; the packets of their own
	// connections keep reaching them.
	Draining
)

// String returns "silent", "accepting" or "draining".
func (s State) String() string {
	switch s {
	case Silent:
		return "silent"
	case Accepting:
		return "accepting"
	case Draining:
		return "draining"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// A Slot is one socket of the group's socket array, as probing found it.
type Slot struct {
	// ID is the member's id. A Silent slot keeps the id it had at the
	// last reconcile, if any, so that a member slow to answer probes
	// keeps its connections; otherwise it is 0.
	ID    uint32
	State State
	Mine  bool // the member belongs to this Group
}

// A Table lists the sockets of a group in the kernel's order: the program
// steers a packet to a socket by its index here.
type Table []Slot

// String lists the slots in order as id:state, with * after this Group's
// own members, for logs.
func (t Table) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range t {
		if i > 0 {
			b.WriteByte(' ')
		}
		if s.State == Silent && s.ID == 0 {
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
func (t Table) slotOf(id uint32) int {
	for i, s := range t {
		if s.ID != 0 && s.ID == id {
			return i
		}
	}
	return -1
}

// equal reports whether t and u map the same ids to the same slots in the
// same states.
func (t Table) equal(u Table) bool {
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
func (t Table) afterClose(i int) Table {
	u := append(Table(nil), t...)
	last := len(u) - 1
	u[i] = u[last]
	return u[:last]
}

// digest returns a non-zero 32-bit digest of what the program built from t
// for connection IDs of cidLen bytes depends on: the ids, their slots and
// states. A check probe carries it, and the program compares it with its
// own (see Group.installed).
func (t Table) digest(cidLen int) uint32 {
	h := fnv.New32a()
	var b [6]byte
	binary.BigEndian.PutUint32(b[:], uint32(len(t)))
	b[4] = byte(cidLen)
	h.Write(b[:5])
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
