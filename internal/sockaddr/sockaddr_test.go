package sockaddr_test

import (
	"net"
	"testing"

	"github.com/b93f8b21/reuseport/internal/sockaddr"
)

func TestLocal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if got := sockaddr.Local(ln); got != ln.Addr() {
		t.Errorf("Local(listener) = %v, want %v", got, ln.Addr())
	}
	if got := sockaddr.Local(pc); got != pc.LocalAddr() {
		t.Errorf("Local(packet conn) = %v, want %v", got, pc.LocalAddr())
	}
	if got := sockaddr.Local("not a socket"); got != nil {
		t.Errorf("Local(string) = %v, want nil", got)
	}
}
