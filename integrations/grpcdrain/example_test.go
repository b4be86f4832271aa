//go:build darwin || freebsd || linux

package grpcdrain_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/integrations/grpcdrain"
)

// A gRPC server that restarts without losing an RPC: every generation
// runs this same code with the same Path, takes the listening socket over
// from the one before, and drains and returns once its own successor
// serves. Here ctx ends it instead, after one health check.
func Example() {
	dir, err := os.MkdirTemp("", "grpcdrain-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background()) // in a real server: signal.NotifyContext

	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	err = handoff.Run(ctx, handoff.RunConfig{
		Config: handoff.Config{Path: filepath.Join(dir, "grpc.sock")},
		OnReady: func(addr net.Addr) {
			go func() {
				defer cancel()
				fmt.Println(healthOf(addr.String()))
			}()
		},
	}, "tcp", "127.0.0.1:0", grpcdrain.NewServer(s))
	fmt.Println("stopped:", err)
	// Output:
	// SERVING
	// stopped: <nil>
}

// healthOf asks the server at addr for its health.
func healthOf(addr string) string {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err.Error()
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		return err.Error()
	}
	return resp.GetStatus().String()
}
