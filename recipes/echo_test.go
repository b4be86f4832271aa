//go:build darwin || freebsd || linux

package recipes_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/recipes"
	"github.com/labstack/echo/v4"
)

func TestEcho(t *testing.T) { testRecipe(t, recipes.Echo) }

// echoFuncs is the way an echo user comes to without the recipe: echo's
// own Start and Shutdown through handoff.Funcs.
func echoFuncs(ctx context.Context, cfg handoff.RunConfig, addr string) error {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/echo", func(c echo.Context) error {
		body, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.Blob(http.StatusOK, "text/plain", body)
	})
	serve := func(ln net.Listener) error {
		e.Listener = ln
		return e.Start("")
	}
	return handoff.Run(ctx, cfg, "tcp", addr, handoff.Funcs(serve, e.Shutdown))
}

// TestEchoFuncsControl: the same app and load with echo's Shutdown, plain
// http.Server.Shutdown, which closes the connections idle between two
// requests; a request sent on one at that moment is lost. It lost 3 to 23
// requests in each of 23 runs of one round (go test -count, with and
// without -race); it runs up to three rounds until one loses some.
func TestEchoFuncsControl(t *testing.T) {
	for round := 1; round <= 3; round++ {
		r := restartUnderLoad(t, echoFuncs)
		t.Logf("control, handoff.Funcs(e.Start, e.Shutdown), round %d: %v; the first failures: %q", round, r, r.errs)
		if r.failed > 0 {
			return
		}
	}
	t.Errorf("the control lost no request in three rounds: the load did not find connections idle, so TestEcho's 0 shows nothing")
}
