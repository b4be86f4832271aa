package main

import "testing"

// TestParseQUIC reads the lines the QUIC tests of the integrations module
// print, nested as nstest and go test -v nest them.
func TestParseQUIC(t *testing.T) {
	out := []byte(`=== RUN   TestSteerJoin
    steer_linux_test.go:38: ran in a private network namespace:
        === RUN   TestSteerJoin
            steer_linux_test.go:241: figures: {"steer":true,"change":"a copy joins (3 -> 4)","requests":13672,"conns":180,"others_at_change":180,"others_broken":0,"changed_conns":0,"changed_clean":0,"changed_broken":0,"new_conns":1190,"new_failed":0,"retried":0}
        --- PASS: TestSteerJoin (10.28s)
BenchmarkSockets/sockets=1,steer=true-2         	   56113	    174755 ns/op	      5722 req/s
BenchmarkSockets/sockets=2,steer=false-2         	   10000	    346952 ns/op	      2882 req/s
`)
	figs, err := parseQUICFigures(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 1 || !figs[0].Steer || figs[0].Requests != 13672 || figs[0].OthersAtChange != 180 || figs[0].Change != "a copy joins (3 -> 4)" {
		t.Errorf("figures: %+v", figs)
	}
	socks := parseQUICSockets(out)
	want := []quicSocketsRow{{1, true, 5722}, {2, false, 2882}}
	if len(socks) != len(want) || socks[0] != want[0] || socks[1] != want[1] {
		t.Errorf("sockets: %+v, want %+v", socks, want)
	}
}
