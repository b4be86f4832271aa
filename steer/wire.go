package steer

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// The connection IDs a member issues are CIDLen bytes long (a constant of
// the group). Bytes 4 to 7 are a random nonce r, bytes 0 to 3 the member's
// id xor the group's keyed mixing of r (see key.mix), both big endian; the
// rest is random.
const (
	// defaultCIDLen is the length of the connection IDs members issue when
	// [Config.CIDLen] is 0.
	defaultCIDLen = 12
	// minCIDLen and maxCIDLen bound [Config.CIDLen]: the id and its
	// nonce take 8 bytes, and QUIC version 1 allows at most 20.
	minCIDLen = 8
	maxCIDLen = 20
	// maxMembers is the largest group whose table fits in one classic BPF
	// program (the kernel takes at most 4096 instructions).
	maxMembers = 1000
)

// Where the program finds a member id in a QUIC packet (RFC 9000, 17.2 and
// 17.3): a short header has its DCID at byte 1, of a length not on the
// wire; a long header has the DCID length at byte 5 and the DCID at 6.
const (
	headerForm     = 0x80 // set in byte 0 of a long header
	shortDCID      = 1
	longDCIDLen    = 5
	longDCID       = 6
	minClientDCID  = 8 // a client's first DCID is at least this long (RFC 9000, 7.2)
	minLongPacket  = longDCID + minClientDCID
	nonceOff       = 4          // where a connection ID's nonce starts
	fallbackToHash = 0xffffffff // any index past the group: the kernel hashes
)

// A control packet (a probe or its reply) is controlLen bytes:
//
//	0..3   magic, whose first byte has the two top bits clear, so that
//	       QUIC stacks pass it on as a non-QUIC packet
//	4..7   the slot the probe asks for, big endian
//	8..15  the prober's nonce
//	16     kind: probe or reply
//	17..20 reply: the member's id, big endian;
//	       probe: 0, or the digest of a table (see Table.digest), which
//	       makes it a check: the program steers it to slot 0 if it was
//	       built from that table and to slot 1 if not
//	21     reply: the member's state
//	22     reply: the member's CIDLen
//	23     reply: a tag of the member's key (see key.tag)
//
// A probe carries zeros after its digest. Probe and reply are the same
// size, so an answer never amplifies a forged probe.
const (
	controlLen = 24
	offSlot    = 4
	offNonce   = 8
	offKind    = 16
	offID      = 17
	offDigest  = 17 // in a probe, where a reply has the id
	offState   = 21
	offCIDLen  = 22
	offKeyTag  = 23

	kindProbe = 1
	kindReply = 2
)

var magic = [4]byte{0x00, 'R', 'P', 'S'}

// IsControl reports whether b is a control packet of this package: a probe or
// a reply that a member's read loop must pass to [Member.HandleControl]
// rather than to its QUIC stack. It looks only at the first bytes, so it
// also reports malformed ones, which HandleControl then drops.
func IsControl(b []byte) bool {
	return len(b) >= len(magic) && [4]byte(b[:4]) == magic
}

// probeMsg is a probe or, with the member fields, a reply.
type probeMsg struct {
	kind   byte
	slot   uint32
	nonce  uint64
	id     uint32
	state  memberState
	cidLen int
	keyTag byte
	digest uint32 // probe: 0, or the table a check asks about
}

func (p probeMsg) marshal() []byte {
	b := make([]byte, controlLen)
	copy(b, magic[:])
	binary.BigEndian.PutUint32(b[offSlot:], p.slot)
	binary.BigEndian.PutUint64(b[offNonce:], p.nonce)
	b[offKind] = p.kind
	if p.kind == kindProbe {
		binary.BigEndian.PutUint32(b[offDigest:], p.digest)
	}
	if p.kind == kindReply {
		binary.BigEndian.PutUint32(b[offID:], p.id)
		b[offState] = byte(p.state)
		b[offCIDLen] = byte(p.cidLen)
		b[offKeyTag] = p.keyTag
	}
	return b
}

// parseControl decodes a well-formed probe or reply; anything else is an
// error.
func parseControl(b []byte) (probeMsg, error) {
	if len(b) != controlLen || !IsControl(b) {
		return probeMsg{}, fmt.Errorf("steer: not a control packet (%d bytes)", len(b))
	}
	p := probeMsg{
		kind:  b[offKind],
		slot:  binary.BigEndian.Uint32(b[offSlot:]),
		nonce: binary.BigEndian.Uint64(b[offNonce:]),
	}
	switch p.kind {
	case kindProbe:
		p.digest = binary.BigEndian.Uint32(b[offDigest:])
		for _, c := range b[offDigest+4:] {
			if c != 0 {
				return probeMsg{}, fmt.Errorf("steer: probe with a non-zero tail")
			}
		}
	case kindReply:
		p.id = binary.BigEndian.Uint32(b[offID:])
		p.state = memberState(b[offState])
		p.cidLen = int(b[offCIDLen])
		p.keyTag = b[offKeyTag]
		if !validID(p.id) || (p.state != stAccepting && p.state != stDraining) ||
			p.cidLen < minCIDLen || p.cidLen > maxCIDLen {
			return probeMsg{}, fmt.Errorf("steer: malformed reply")
		}
	default:
		return probeMsg{}, fmt.Errorf("steer: control packet of unknown kind %d", p.kind)
	}
	return p, nil
}

// validID reports whether id may name a member: 0 and all ones are kept
// out so that a zeroed or filled header never matches one.
func validID(id uint32) bool { return id != 0 && id != 0xffffffff }

// randomID returns a random valid member id not in taken.
func randomID(taken func(uint32) bool) uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		if id := binary.BigEndian.Uint32(b[:]); validID(id) && !taken(id) {
			return id
		}
	}
}

func randomNonce() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// newCID returns a connection ID of n bytes that carries id, hidden by k.
func newCID(k key, id uint32, n int) []byte {
	b := make([]byte, n)
	rand.Read(b[nonceOff:])
	r := binary.BigEndian.Uint32(b[nonceOff:])
	binary.BigEndian.PutUint32(b, id^k.mix(r))
	return b
}

// idOf returns the member id that a connection ID issued by a member of a
// group keyed by k carries. It reports false if cid is too short.
func (k key) idOf(cid []byte) (uint32, bool) {
	if len(cid) < minCIDLen {
		return 0, false
	}
	return binary.BigEndian.Uint32(cid) ^ k.mix(binary.BigEndian.Uint32(cid[nonceOff:])), true
}
