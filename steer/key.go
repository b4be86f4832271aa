package steer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
)

// keyLen is how many bytes of Config.Key the mixing uses.
const keyLen = 16

// A key is the four 32-bit words of the mixing that hides a member's id in
// the connection IDs it issues. Words 1 and 2 are multipliers, and odd, so
// that every step of mix is a bijection of 32-bit words.
type key [4]uint32

func newKey(b []byte) key {
	var k key
	for i := range k {
		k[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	k[1] |= 1
	k[2] |= 1
	return k
}

// bootIDPath holds a random UUID the kernel draws at every boot. Every
// process of the host reads the same one; no other host knows it.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// hostKey is the key of the group on port when Config.Key is nil: every
// process of this host derives the same one, and it never leaves the host.
func hostKey(port int) (key, error) {
	id, err := os.ReadFile(bootIDPath)
	if err != nil {
		return key{}, fmt.Errorf("steer: deriving the group's connection ID key (set Config.Key instead): %w", err)
	}
	h := sha256.New()
	h.Write([]byte("github.com/b93f8b21/reuseport/steer connection ID key\x00"))
	h.Write(bytes.TrimSpace(id))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(port)))
	return newKey(h.Sum(nil)), nil
}

// mix is the keyed mixing of a connection ID's nonce r whose result, xored
// with the member's id, makes the first four bytes of the connection ID.
// The program computes it with the same 32-bit operations (see
// assembler.mix): xor with a key word, multiply by an odd key word, fold the
// high bits down, twice, then xor with the last key word. Without the key,
// connection IDs of one member look unrelated to each other; it is a keyed
// obfuscation against passive linking, not encryption (see "Privacy" in the
// package documentation).
func (k key) mix(r uint32) uint32 {
	x := (r ^ k[0]) * k[1]
	x ^= x >> 16
	x *= k[2]
	x ^= x >> 15
	return x ^ k[3]
}

// tag is a byte that probe replies carry, so that a process notices a
// member of its group that uses another key. It tells an observer (who
// would first have to be on the host) almost nothing about the key.
func (k key) tag() byte {
	var b [16]byte
	for i, w := range k {
		binary.BigEndian.PutUint32(b[4*i:], w)
	}
	sum := sha256.Sum256(b[:])
	return sum[0]
}
