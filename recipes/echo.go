package recipes

import (
	"context"
	"io"
	"net/http"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/labstack/echo/v4"
)

// Echo serves an echo app on addr until a successor started with the same
// cfg.Path serves (it then returns nil once it has answered every request
// it accepted), or until ctx ends.
func Echo(ctx context.Context, cfg handoff.RunConfig, addr string) error {
	e := echo.New()
	e.POST("/echo", func(c echo.Context) error {
		body, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.Blob(http.StatusOK, "text/plain", body)
	})
	// e.Server is the *http.Server that e.Start would serve; echo.New has
	// set its Handler to e. Not handoff.Funcs(…, e.Shutdown): that is
	// http.Server.Shutdown, which loses keep-alive requests.
	return handoff.Run(ctx, cfg, "tcp", addr, e.Server)
}
