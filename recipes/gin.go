package recipes

import (
	"context"
	"io"
	"net/http"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/gin-gonic/gin"
)

// Gin serves a gin app on addr until a successor started with the same
// cfg.Path serves (it then returns nil once it has answered every request
// it accepted), or until ctx ends.
func Gin(ctx context.Context, cfg handoff.RunConfig, addr string) error {
	r := gin.New()
	r.Use(gin.Recovery())
	r.POST("/echo", func(c *gin.Context) {
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			c.AbortWithError(http.StatusBadRequest, err)
			return
		}
		c.Data(http.StatusOK, "text/plain", body)
	})
	// The *http.Server that r.Run would make, served by Run instead.
	return handoff.Run(ctx, cfg, "tcp", addr, &http.Server{Handler: r.Handler()})
}
