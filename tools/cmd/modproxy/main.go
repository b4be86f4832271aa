// Command modproxy publishes the published modules of a checkout (the root
// module and integrations) at one version into a directory laid out as the
// GOPROXY protocol wants, so that GOPROXY=file://DIR serves them as the
// module proxy would after tagging vX.Y.Z and integrations/vX.Y.Z on that
// checkout. scripts/consumer-test.sh uses it to try a release before it
// exists.
//
//	go run ./cmd/modproxy -repo .. -version v0.1.0 -out /tmp/proxy
//
// The zips are made by golang.org/x/mod/zip, the code the go command and
// the proxy use: it leaves out nested modules (bench, tools, and
// integrations from the root's zip) and rejects files a module may not
// hold. A module whose zip has no LICENSE is refused: pkg.go.dev shows no
// documentation for it, and users may not use it.
package main

import (
	"archive/zip"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	modzip "golang.org/x/mod/zip"

	"github.com/b93f8b21/reuseport/tools/internal/published"
)

func main() {
	repo := flag.String("repo", "..", "the repository checkout to publish")
	version := flag.String("version", "", "the version to publish, vX.Y.Z")
	out := flag.String("out", "", "the GOPROXY directory to write into (created if need be)")
	dirs := flag.Bool("dirs", false, "print the published modules' directories, relative to the repository, and exit")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("modproxy: ")
	if *dirs {
		fmt.Println(strings.Join(published.Dirs, "\n"))
		return
	}
	if *out == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if !semver.IsValid(*version) || semver.Canonical(*version) != *version || semver.Build(*version) != "" {
		log.Fatalf("-version %q is not a canonical semantic version such as v0.1.0", *version)
	}
	mods, err := published.Modules(*repo)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range mods {
		if err := publish(*repo, m, *version, *out); err != nil {
			log.Fatalf("%s@%s: %v", m.Path, *version, err)
		}
		fmt.Printf("published %s@%s (tag %s%s)\n", m.Path, *version, m.TagPfx, *version)
	}
}

// publish writes list, .info, .mod and .zip of one module version under
// out/<escaped module path>/@v/.
func publish(repo string, m published.Module, version, out string) error {
	mv := module.Version{Path: m.Path, Version: version}
	if err := module.Check(mv.Path, mv.Version); err != nil {
		return err
	}
	escPath, err := module.EscapePath(mv.Path)
	if err != nil {
		return err
	}
	escVersion, err := module.EscapeVersion(mv.Version)
	if err != nil {
		return err
	}
	dir := filepath.Join(out, filepath.FromSlash(escPath), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(dir, escVersion)

	zipFile := base + ".zip"
	f, err := os.Create(zipFile)
	if err != nil {
		return err
	}
	err = modzip.CreateFromDir(f, mv, filepath.Join(repo, m.Dir))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := checkLicense(zipFile, mv); err != nil {
		return err
	}
	if err := os.WriteFile(base+".mod", m.GoMod, 0o644); err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{mv.Version, time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".info", info, 0o644); err != nil {
		return err
	}
	return addToList(filepath.Join(dir, "list"), mv.Version)
}

// checkLicense fails unless the module zip carries a LICENSE at its root.
func checkLicense(zipFile string, mv module.Version) error {
	z, err := zip.OpenReader(zipFile)
	if err != nil {
		return err
	}
	defer z.Close()
	want := mv.Path + "@" + mv.Version + "/LICENSE"
	for _, f := range z.File {
		if f.Name == want {
			return nil
		}
	}
	return fmt.Errorf("the module zip has no LICENSE file")
}

// addToList adds version to the proxy's list file, keeping the versions
// published earlier into the same directory.
func addToList(file, version string) error {
	data, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	versions := strings.Fields(string(data))
	if !slices.Contains(versions, version) {
		versions = append(versions, version)
	}
	semver.Sort(versions)
	return os.WriteFile(file, []byte(strings.Join(versions, "\n")+"\n"), 0o644)
}
