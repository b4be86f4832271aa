// Package published names the modules of the repository that are published
// (tagged and served by the module proxy), so that the release tools agree
// on them: the root module, tagged vX.Y.Z, and integrations, tagged
// integrations/vX.Y.Z. bench and tools have go.mod files of their own only
// to keep their dependencies out of the published ones; they are never
// tagged.
package published

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/modfile"
)

// Dirs are the published modules' directories, relative to the repository
// root, which is also the prefix of their tags ("" for the root).
var Dirs = []string{".", "integrations"}

// A Module is one published module of a checkout.
type Module struct {
	Dir    string // relative to the repository root
	Path   string // module path, from its go.mod
	GoMod  []byte // its go.mod, as the module proxy serves it
	TagPfx string // prefix of its tags: "" or "integrations/"
}

// Modules reads the go.mod of every published module of the checkout at
// repo.
func Modules(repo string) ([]Module, error) {
	var mods []Module
	for _, dir := range Dirs {
		file := filepath.Join(repo, dir, "go.mod")
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		path := modfile.ModulePath(data)
		if path == "" {
			return nil, fmt.Errorf("%s: no module line", file)
		}
		pfx := ""
		if dir != "." {
			pfx = filepath.ToSlash(dir) + "/"
		}
		mods = append(mods, Module{Dir: dir, Path: path, GoMod: data, TagPfx: pfx})
	}
	return mods, nil
}
