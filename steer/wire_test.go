package steer

import (
	"bytes"
	"errors"
	"net"
	"testing"
)

func TestControlRoundTrip(t *testing.T) {
	for _, p := range []probeMsg{
		{kind: kindProbe, slot: 7, nonce: 0x0102030405060708},
		{kind: kindProbe, slot: 0, nonce: 11, digest: 0x89abcdef}, // a check
		{kind: kindReply, slot: 3, nonce: 42, id: 0xdeadbeef, state: stDraining, cidLen: 20},
	} {
		b := p.marshal()
		if len(b) != controlLen || !IsControl(b) {
			t.Fatalf("%+v marshals to %x", p, b)
		}
		if b[0]&0xc0 != 0 {
			t.Errorf("control packet starts with %#x: a QUIC stack would parse it", b[0])
		}
		got, err := parseControl(b)
		if err != nil || got != p {
			t.Errorf("parseControl(%x) = %+v, %v; want %+v", b, got, err, p)
		}
	}
}

func TestMalformedControl(t *testing.T) {
	probe := probeMsg{kind: kindProbe, slot: 1, nonce: 9}.marshal()
	reply := probeMsg{kind: kindReply, slot: 1, nonce: 9, id: 5, state: stAccepting, cidLen: 12}.marshal()
	with := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"magic only", magic[:]},
		{"short probe", probe[:controlLen-1]},
		{"long probe", append(bytes.Clone(probe), 0)},
		{"wrong magic", with(probe, 1, 'X')},
		{"unknown kind", with(probe, offKind, 9)},
		{"probe with a tail", with(probe, controlLen-1, 1)},
		{"probe with a tail after its digest", with(probe, offDigest+4, 1)},
		{"reply with id 0", with(with(with(with(reply, offID, 0), offID+1, 0), offID+2, 0), offID+3, 0)},
		{"reply with all-ones id", with(with(with(with(reply, offID, 0xff), offID+1, 0xff), offID+2, 0xff), offID+3, 0xff)},
		{"reply with a bad state", with(reply, offState, 7)},
		{"reply with silent state", with(reply, offState, byte(stSilent))},
		{"reply with a short CIDLen", with(reply, offCIDLen, minCIDLen-1)},
		{"reply with a long CIDLen", with(reply, offCIDLen, maxCIDLen+1)},
	} {
		if p, err := parseControl(tc.b); err == nil {
			t.Errorf("%s: parseControl(%x) = %+v, want an error", tc.name, tc.b, p)
		}
	}
}

// TestHandleControl checks that a member answers only well-formed probes
// from this host, with a reply of the probe's size, and passes on every
// packet that is not a control packet.
func TestHandleControl(t *testing.T) {
	g := mustNewGroup(t, Config{})
	g.addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4433}
	m := &Member{g: g, id: 0x01020304}
	m.state.Store(uint32(stAccepting))
	local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}
	probe := probeMsg{kind: kindProbe, slot: 2, nonce: 77}.marshal()
	for _, tc := range []struct {
		name      string
		b         []byte
		from      net.Addr
		control   bool
		answered  bool
		wantState memberState
	}{
		{"probe", probe, local, true, true, stAccepting},
		{"probe over IPv6", probe, &net.UDPAddr{IP: net.IPv6loopback, Port: 5000}, true, true, stAccepting},
		{"probe from another host", probe, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}, true, false, 0},
		{"reply", probeMsg{kind: kindReply, slot: 2, nonce: 77, id: 9, state: stAccepting, cidLen: 12}.marshal(), local, true, false, 0},
		{"truncated probe", probe[:20], local, true, false, 0},
		{"QUIC short header", []byte{0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, local, false, false, 0},
		{"QUIC long header", []byte{0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8}, local, false, false, 0},
		{"empty", nil, local, false, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wrote [][]byte
			write := func(b []byte, to net.Addr) (int, error) {
				if to != tc.from {
					t.Errorf("reply to %v, want %v", to, tc.from)
				}
				wrote = append(wrote, bytes.Clone(b))
				return len(b), nil
			}
			if got := m.HandleControl(tc.b, tc.from, write); got != tc.control {
				t.Errorf("HandleControl = %v, want %v", got, tc.control)
			}
			if !tc.answered {
				if len(wrote) != 0 {
					t.Errorf("answered with %x", wrote)
				}
				return
			}
			if len(wrote) != 1 || len(wrote[0]) > len(tc.b) {
				t.Fatalf("answered %x to a %d-byte probe; want one reply no larger", wrote, len(tc.b))
			}
			r, err := parseControl(wrote[0])
			want := probeMsg{kind: kindReply, slot: 2, nonce: 77, id: m.id, state: tc.wantState, cidLen: defaultCIDLen, keyTag: g.key.tag()}
			if err != nil || r != want {
				t.Errorf("reply %+v, %v; want %+v", r, err, want)
			}
		})
	}
}

func TestConnectionID(t *testing.T) {
	for _, n := range []int{minCIDLen, defaultCIDLen, maxCIDLen} {
		m := &Member{g: mustNewGroup(t, Config{CIDLen: n, Key: testKey}), id: 0xa1b2c3d4}
		a := m.NewConnectionID()
		b := m.NewConnectionID()
		if len(a) != n || m.CIDLen() != n {
			t.Errorf("CIDLen %d: got a %d-byte ID, CIDLen() = %d", n, len(a), m.CIDLen())
		}
		if id, ok := m.g.key.idOf(a); !ok || id != m.id {
			t.Errorf("idOf(%x) = %08x, %v; want %08x", a, id, ok, m.id)
		}
		if bytes.Equal(a, b) {
			t.Errorf("two connection IDs are equal: %x", a)
		}
	}
	if _, ok := (key{}).idOf(make([]byte, minCIDLen-1)); ok {
		t.Errorf("idOf accepted a short connection ID")
	}
}

func TestRandomID(t *testing.T) {
	taken := map[uint32]bool{}
	for range 1000 {
		id := randomID(func(id uint32) bool { return taken[id] })
		if !validID(id) || taken[id] {
			t.Fatalf("randomID gave %08x", id)
		}
		taken[id] = true
	}
}

func TestAfterClose(t *testing.T) {
	tab := slotTable{{ID: 1, State: stAccepting}, {ID: 2, State: stDraining}, {ID: 3, State: stAccepting}}
	for _, tc := range []struct {
		closing int
		want    []uint32
	}{{0, []uint32{3, 2}}, {1, []uint32{1, 3}}, {2, []uint32{1, 2}}} {
		got := tab.afterClose(tc.closing)
		ids := []uint32{}
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		if !equalIDs(ids, tc.want) {
			t.Errorf("after slot %d closes: %v, want %v", tc.closing, ids, tc.want)
		}
	}
	if tab[0].ID != 1 || len(tab) != 3 {
		t.Errorf("afterClose changed its receiver: %v", tab)
	}
}

func equalIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestUnsupported runs the path every OS but Linux takes: whatever this
// OS is, with the unsupported platform every entry point fails with an
// error that wraps errors.ErrUnsupported and names the OS.
func TestUnsupported(t *testing.T) {
	saved := sys
	sys = unsupported{"plan9"}
	t.Cleanup(func() { sys = saved })
	g := mustNewGroup(t, Config{})
	var conn *net.UDPConn
	if c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
		conn = c
		defer c.Close()
	}
	m, err := g.Join(conn)
	if m != nil || !errors.Is(err, errors.ErrUnsupported) || !bytes.Contains([]byte(err.Error()), []byte("plan9")) {
		t.Errorf("Join = %v, %v; want an error wrapping errors.ErrUnsupported that names the OS", m, err)
	}
	if err := g.reconcile(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Reconcile = %v; want errors.ErrUnsupported", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("Close of an empty group = %v", err)
	}
	if tab := g.tableSnapshot(); len(tab) != 0 {
		t.Errorf("Table = %v; want empty", tab)
	}
}

// TestDigest checks that a table's digest changes with whatever the program
// built from it depends on, and is never 0 (which marks a plain probe).
func TestDigest(t *testing.T) {
	base := slotTable{{ID: 1, State: stAccepting}, {ID: 2, State: stAccepting}, {ID: 3, State: stDraining}}
	seen := map[uint32]string{}
	for name, d := range map[string]uint32{
		"base":          base.digest(12, key{}),
		"other CIDLen":  base.digest(16, key{}),
		"swapped slots": slotTable{base[1], base[0], base[2]}.digest(12, key{}),
		"a drain":       slotTable{base[0], {ID: 2, State: stDraining}, base[2]}.digest(12, key{}),
		"one fewer":     base[:2].digest(12, key{}),
		"another id":    slotTable{base[0], base[1], {ID: 4, State: stDraining}}.digest(12, key{}),
		"empty":         slotTable(nil).digest(12, key{}),
	} {
		if d == 0 {
			t.Errorf("%s: digest 0", name)
		}
		if other, dup := seen[d]; dup {
			t.Errorf("%s and %s have the same digest %08x", name, other, d)
		}
		seen[d] = name
	}
	mine := slicesClone(base)
	mine[0].Mine = true
	if mine.digest(12, key{}) != base.digest(12, key{}) {
		t.Error("the digest depends on which members are this process's, which the program does not")
	}
}

func slicesClone(t slotTable) slotTable { return append(slotTable(nil), t...) }
