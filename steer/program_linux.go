package steer

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// magicWord is magic as the program loads it.
var magicWord = binary.BigEndian.Uint32(magic[:])

// accepting returns the slots that take new connections, in order.
func (t slotTable) accepting() []int {
	var a []int
	for i, s := range t {
		if s.State == stAccepting {
			a = append(a, i)
		}
	}
	return a
}

// maxInstructions is the kernel's limit on a classic BPF program
// (BPF_MAXINSNS).
const maxInstructions = 4096

// program returns the classic BPF program that steers the group's packets
// by t, for connection IDs of cidLen bytes hidden by k. The kernel runs it
// on each datagram with the data at the UDP payload; its result indexes
// the group's sockets, and an index past the end lets the kernel hash the
// datagram as it does without a program.
//
// A nil or empty t gives a program that steers probes and hashes the rest.
func program(t slotTable, cidLen int, k key) ([]unix.SockFilter, error) {
	if len(t) > maxMembers {
		return nil, fmt.Errorf("steer: a group of %d sockets is larger than %d", len(t), maxMembers)
	}
	var a assembler
	a.control(t.digest(cidLen, k))
	a.headers(cidLen)
	a.decode(k)
	a.match(t)
	a.firstFlight(t.accepting())
	return a.assemble()
}

// Scratch memory of the program.
const (
	memDCID  = 0 // where the DCID starts: shortDCID or longDCID
	memMixed = 1 // the keyed mixing of the connection ID's nonce
)

// control steers a probe to the slot it asks for. A check (a probe with a
// digest) asks whether this program was built from the table with that
// digest: slot 0 if so, slot 1 if not. Anything else goes on to
// "notControl".
func (a *assembler) control(digest uint32) {
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_LEN, 0)
	a.jump(unix.BPF_JGE, controlLen, "", "notControl")
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 0)
	a.jump(unix.BPF_JEQ, magicWord, "", "notControl")
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offDigest)
	a.jump(unix.BPF_JEQ, 0, "toSlot", "")
	a.jump(unix.BPF_JEQ, digest, "toSlot", "")
	a.op(unix.BPF_RET|unix.BPF_K, 1)
	a.label("toSlot")
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offSlot)
	a.op(unix.BPF_RET|unix.BPF_A, 0)
}

// headers tells a short header from a long one and leaves in X, and in
// memDCID, where the DCID starts, then goes on to "decode". A packet too
// short to carry one of our connection IDs goes by hash; a long header
// whose DCID has another length than ours is a client's first flight.
func (a *assembler) headers(cidLen int) {
	a.label("notControl")
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_LEN, 0)
	a.jump(unix.BPF_JGE, uint32(shortDCID+cidLen), "", "hash")
	a.op(unix.BPF_LD|unix.BPF_B|unix.BPF_ABS, 0)
	a.jump(unix.BPF_JSET, headerForm, "long", "short")
	a.label("hash")
	a.op(unix.BPF_RET|unix.BPF_K, fallbackToHash)

	a.label("short")
	a.op(unix.BPF_LDX|unix.BPF_W|unix.BPF_IMM, shortDCID)
	a.ja("decode")

	// A DCID of our length may be one of ours (a client's Handshake, or an
	// Initial after the server's first); otherwise it is a client's first
	// flight.
	a.label("long")
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_LEN, 0)
	a.jump(unix.BPF_JGE, minLongPacket, "", "hash2")
	a.op(unix.BPF_LD|unix.BPF_B|unix.BPF_ABS, longDCIDLen)
	a.jump(unix.BPF_JEQ, uint32(cidLen), "", "toFirstFlight")
	a.op(unix.BPF_LDX|unix.BPF_W|unix.BPF_IMM, longDCID)
	a.ja("decode")
	a.label("hash2")
	a.op(unix.BPF_RET|unix.BPF_K, fallbackToHash)
	a.label("toFirstFlight")
	a.ja("firstFlight")
}

// decode leaves in A the member id of the DCID that starts at X: the first
// word xor k.mix of the second, computed as key.mix does.
func (a *assembler) decode(k key) {
	a.label("decode")
	a.op(unix.BPF_STX, memDCID)
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_IND, nonceOff)
	a.op(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_K, k[0])
	a.op(unix.BPF_ALU|unix.BPF_MUL|unix.BPF_K, k[1])
	a.foldDown(16)
	a.op(unix.BPF_ALU|unix.BPF_MUL|unix.BPF_K, k[2])
	a.foldDown(15)
	a.op(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_K, k[3])
	a.op(unix.BPF_ST, memMixed)
	a.op(unix.BPF_LDX|unix.BPF_MEM, memDCID)
	a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_IND, 0)
	a.op(unix.BPF_LDX|unix.BPF_MEM, memMixed)
	a.op(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_X, 0)
}

// foldDown sets A to A xor A>>n, through X.
func (a *assembler) foldDown(n uint32) {
	a.op(unix.BPF_MISC|unix.BPF_TAX, 0)
	a.op(unix.BPF_ALU|unix.BPF_RSH|unix.BPF_K, n)
	a.op(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_X, 0)
}

// match steers a packet whose decoded id (in A) is a member's to that
// member's slot. An id no member has is a short header of a socket that is
// gone, which goes by hash, or a long header, which is a client's first
// flight.
func (a *assembler) match(t slotTable) {
	for i, s := range t {
		if s.ID == 0 {
			continue
		}
		a.jump(unix.BPF_JEQ, s.ID, "", fmt.Sprint("nomatch", i))
		a.op(unix.BPF_RET|unix.BPF_K, uint32(i))
		a.label(fmt.Sprint("nomatch", i))
	}
	a.op(unix.BPF_LD|unix.BPF_MEM, memDCID)
	a.jump(unix.BPF_JEQ, longDCID, "firstFlight", "")
	a.op(unix.BPF_RET|unix.BPF_K, fallbackToHash)
}

// firstFlight steers a client's first flight: the first word of its
// random DCID, modulo the accepting sockets, picks one, so that every
// retransmission of its Initial reaches the same socket and no draining
// socket gets a new connection.
func (a *assembler) firstFlight(acc []int) {
	a.label("firstFlight")
	if len(acc) > 0 {
		a.op(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, longDCID)
		a.op(unix.BPF_ALU|unix.BPF_MOD|unix.BPF_K, uint32(len(acc)))
		for i, slot := range acc {
			a.jump(unix.BPF_JEQ, uint32(i), "", fmt.Sprint("notAcc", i))
			a.op(unix.BPF_RET|unix.BPF_K, uint32(slot))
			a.label(fmt.Sprint("notAcc", i))
		}
	}
	a.op(unix.BPF_RET|unix.BPF_K, fallbackToHash)
}

// assembler lays out a classic BPF program with named jump targets.
type assembler struct {
	ins    []unix.SockFilter
	labels map[string]int
	fixups []fixup
}

// fixup is a jump whose targets are resolved once every label is placed;
// an empty target is the next instruction.
type fixup struct {
	at     int
	jt, jf string
	always bool
}

func (a *assembler) op(code uint16, k uint32) {
	a.ins = append(a.ins, unix.SockFilter{Code: code, K: k})
}

// jump adds a conditional jump on A compared with k.
func (a *assembler) jump(cond uint16, k uint32, jt, jf string) {
	a.fixups = append(a.fixups, fixup{at: len(a.ins), jt: jt, jf: jf})
	a.op(unix.BPF_JMP|cond|unix.BPF_K, k)
}

// ja adds an unconditional jump, which may be as long as the program.
func (a *assembler) ja(target string) {
	a.fixups = append(a.fixups, fixup{at: len(a.ins), jt: target, always: true})
	a.op(unix.BPF_JMP|unix.BPF_JA, 0)
}

func (a *assembler) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

func (a *assembler) assemble() ([]unix.SockFilter, error) {
	if len(a.ins) > maxInstructions {
		return nil, fmt.Errorf("steer: the program needs %d instructions, more than the kernel's %d", len(a.ins), maxInstructions)
	}
	offset := func(from int, target string) (int, error) {
		if target == "" {
			return 0, nil
		}
		to, ok := a.labels[target]
		if !ok || to <= from {
			return 0, fmt.Errorf("steer: bad jump from %d to %q", from, target)
		}
		return to - from - 1, nil
	}
	for _, f := range a.fixups {
		jt, err := offset(f.at, f.jt)
		if err != nil {
			return nil, err
		}
		if f.always {
			a.ins[f.at].K = uint32(jt)
			continue
		}
		jf, err := offset(f.at, f.jf)
		if err != nil {
			return nil, err
		}
		if jt > 255 || jf > 255 {
			return nil, fmt.Errorf("steer: a conditional jump from %d is too long (%d, %d)", f.at, jt, jf)
		}
		a.ins[f.at].Jt, a.ins[f.at].Jf = uint8(jt), uint8(jf)
	}
	return a.ins, nil
}
