package recipes

import (
	"context"
	"io"
	"net/http"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// Chi serves a chi router on addr until a successor started with the same
// cfg.Path serves (it then returns nil once it has answered every request
// it accepted), or until ctx ends.
func Chi(ctx context.Context, cfg handoff.RunConfig, addr string) error {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Post("/echo", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	return handoff.Run(ctx, cfg, "tcp", addr, &http.Server{Handler: r})
}
