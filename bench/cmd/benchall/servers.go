package main

import (
	"errors"

	"github.com/b93f8b21/reuseport/bench/internal/child"
	"github.com/b93f8b21/reuseport/bench/internal/httpserver"
)

// goServers are Go HTTP servers (internal/httpserver) in child processes,
// all serving one address.
type goServers struct {
	addr  string
	procs []*child.Proc
}

// startGoServers starts procs children that listen in mode; with
// [httpserver.ListenGroup] each makes sockets sockets. The first child
// picks a free port and the others join it.
func (r *runner) startGoServers(mode string, procs, sockets int) (*goServers, error) {
	g := &goServers{addr: "127.0.0.1:0"}
	for range procs {
		p, err := child.Start(httpserver.ChildRole, httpserver.ChildArgs(mode, g.addr, sockets), nil, r.childDeadline())
		if err != nil {
			g.kill()
			return nil, err
		}
		g.procs = append(g.procs, p)
		var ready httpserver.ChildReady
		if err := p.Recv(&ready, childWait); err != nil {
			g.kill()
			return nil, err
		}
		g.addr = ready.Addr
	}
	return g, nil
}

// stop shuts every server down gracefully and returns what each one
// counted.
func (g *goServers) stop() ([]httpserver.ChildDone, error) {
	done := make([]httpserver.ChildDone, len(g.procs))
	var errs []error
	for i, p := range g.procs {
		errs = append(errs, p.Stop(&done[i], childWait))
	}
	return done, errors.Join(errs...)
}

func (g *goServers) kill() {
	for _, p := range g.procs {
		p.Kill()
	}
}
