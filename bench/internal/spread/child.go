package spread

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/bench/internal/child"
)

// ChildRole names the helper process that serves one id.
const ChildRole = "spread-server"

// ChildReady is what a child sends once it accepts connections.
type ChildReady struct {
	Addr string
}

// ChildDone is what a child sends when it stops.
type ChildDone struct {
	Served int
}

// ChildArgs are the arguments for a child that serves id on addr: with
// inherited, on the listener passed as descriptor 3 (addr is then unused);
// otherwise on its own SO_REUSEPORT socket bound to addr.
func ChildArgs(id int, addr string, inherited bool) []string {
	return []string{"-id", fmt.Sprint(id), "-addr", addr, fmt.Sprintf("-inherited=%t", inherited)}
}

// ChildMain is the body of a child started with [ChildArgs].
func ChildMain(args []string) error {
	fs := flag.NewFlagSet(ChildRole, flag.ContinueOnError)
	id := fs.Int("id", 0, "the byte to answer with")
	addr := fs.String("addr", "127.0.0.1:0", "address to bind with SO_REUSEPORT")
	inherited := fs.Bool("inherited", false, "serve the listener on descriptor 3 instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id < 0 || *id > 255 {
		return fmt.Errorf("id %d does not fit in a byte", *id)
	}
	var ln net.Listener
	var err error
	if *inherited {
		f := os.NewFile(3, "inherited listener")
		ln, err = net.FileListener(f)
		f.Close()
	} else {
		ln, err = reuseport.Listen("tcp", *addr)
	}
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	var n int
	go func() {
		var err error
		n, err = Serve(ln, byte(*id))
		served <- err
	}()
	if err := child.Send(ChildReady{Addr: ln.Addr().String()}); err != nil {
		return err
	}
	<-child.StopRequested()
	ln.Close()
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return child.Send(ChildDone{Served: n})
}
