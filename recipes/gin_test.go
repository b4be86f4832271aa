//go:build darwin || freebsd || linux

package recipes_test

import (
	"testing"

	"github.com/b93f8b21/reuseport/recipes"
	"github.com/gin-gonic/gin"
)

func TestGin(t *testing.T) {
	gin.SetMode(gin.ReleaseMode) // no debug lines for every route
	testRecipe(t, recipes.Gin)
}
