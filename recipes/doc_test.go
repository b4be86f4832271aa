package recipes_test

import (
	"os"
	"strings"
	"testing"
)

// TestDocShowsTheRecipes: docs/recipes/frameworks.md shows each recipe
// file as it is, from its imports on, so that what readers copy is what
// the tests run.
func TestDocShowsTheRecipes(t *testing.T) {
	doc, err := os.ReadFile("../docs/recipes/frameworks.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"echo.go", "gin.go", "chi.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, code, ok := strings.Cut(string(src), "\nimport (")
		if !ok {
			t.Fatalf("%s has no import block", file)
		}
		code = "import (" + code
		if !strings.Contains(string(doc), code) {
			t.Errorf("docs/recipes/frameworks.md does not show %s as it is, from its imports on:\n%s", file, code)
		}
	}
}
