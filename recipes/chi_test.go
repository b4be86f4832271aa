//go:build darwin || freebsd || linux

package recipes_test

import (
	"testing"

	"github.com/b93f8b21/reuseport/recipes"
)

func TestChi(t *testing.T) { testRecipe(t, recipes.Chi) }
