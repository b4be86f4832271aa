package lameduck

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGauge(t *testing.T) {
	var g gauge
	if err := g.Wait(context.Background()); err != nil {
		t.Fatalf("Wait at 0: %v", err)
	}
	g.Add(2)
	done := make(chan error, 1)
	go func() { done <- g.Wait(context.Background()) }()
	g.Add(-1)
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v at 1", err)
	case <-time.After(20 * time.Millisecond):
	}
	g.Add(-1)
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	g.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := g.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait at 1 with a context that ends: %v", err)
	}
}
