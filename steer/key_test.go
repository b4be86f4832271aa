package steer

import (
	"crypto/rand"
	"encoding/binary"
	"testing"
)

var testKey = []byte("0123456789abcdef")

// TestConnectionIDsShareNoFixedBytes checks that the connection IDs of one
// member carry nothing an observer can link them by: across 10,000 of them
// every byte position takes many values, and the member's id is nowhere in
// the clear.
func TestConnectionIDsShareNoFixedBytes(t *testing.T) {
	const n = 10000
	g := mustNewGroup(t, Config{Key: testKey})
	m := &Member{g: g, id: 0xa1b2c3d4}
	seen := make([]map[byte]bool, defaultCIDLen)
	for i := range seen {
		seen[i] = map[byte]bool{}
	}
	idBytes := binary.BigEndian.AppendUint32(nil, m.id)
	withID := 0
	for range n {
		cid := m.NewConnectionID()
		for i, b := range cid {
			seen[i][b] = true
		}
		for i := 0; i+4 <= len(cid); i++ {
			if string(cid[i:i+4]) == string(idBytes) {
				withID++
			}
		}
		if id, ok := g.key.idOf(cid); !ok || id != m.id {
			t.Fatalf("the group's key reads %08x from %x; want %08x", id, cid, m.id)
		}
	}
	for i, vs := range seen {
		// A uniform byte shows all 256 values in 10,000 draws but with
		// probability about 256*(255/256)^10000, which is nil.
		if len(vs) < 250 {
			t.Errorf("byte %d of %d connection IDs took only %d values", i, n, len(vs))
		}
	}
	if withID > 2 {
		t.Errorf("the member id %x stood in the clear in %d of %d connection IDs", idBytes, withID, n)
	}
}

// TestKeysDoNotDecodeEachOther checks that the members of a group with
// another key cannot read the member ids of this one: the id decoded with
// the wrong key is not the member's, and varies from one connection ID to
// the next.
func TestKeysDoNotDecodeEachOther(t *testing.T) {
	const n = 10000
	a := mustNewGroup(t, Config{Key: testKey})
	other := make([]byte, keyLen)
	rand.Read(other)
	b := mustNewGroup(t, Config{Key: other})
	m := &Member{g: a, id: 0x01020304}
	right, decoded := 0, map[uint32]bool{}
	for range n {
		id, _ := b.key.idOf(m.NewConnectionID())
		if id == m.id {
			right++
		}
		decoded[id] = true
	}
	if right > 0 {
		t.Errorf("another key read the member id from %d of %d connection IDs", right, n)
	}
	if len(decoded) < n*99/100 {
		t.Errorf("another key read only %d distinct ids from %d connection IDs", len(decoded), n)
	}
}

// TestHostKey checks the key every process of the host derives for a port
// without Config.Key: the same on every call, another for another port.
func TestHostKey(t *testing.T) {
	k1, err := hostKey(4433)
	if err != nil {
		t.Skipf("no boot id here: %v", err)
	}
	k2, _ := hostKey(4433)
	k3, _ := hostKey(4434)
	if k1 != k2 || k1 == k3 {
		t.Errorf("hostKey(4433) = %x, then %x; hostKey(4434) = %x", k1, k2, k3)
	}
	if k1[1]&1 == 0 || k1[2]&1 == 0 {
		t.Errorf("the multipliers of %x are not odd", k1)
	}
}

func TestNewGroupChecksConfig(t *testing.T) {
	for _, cfg := range []Config{
		{CIDLen: 7}, {CIDLen: 21}, {CIDLen: -1}, {Key: []byte("short")},
	} {
		if g, err := NewGroup(cfg); err == nil {
			t.Errorf("NewGroup(%+v) = %v, nil; want an error", cfg, g)
		}
	}
	if _, err := NewGroup(Config{CIDLen: 8, Key: make([]byte, 32)}); err != nil {
		t.Errorf("NewGroup with CIDLen 8 and a 32-byte key: %v", err)
	}
}
