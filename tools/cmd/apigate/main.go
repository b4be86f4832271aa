// Command apigate is the compatibility gate of the published modules: it
// compares the public API of every package of the root module and of
// integrations (not internal, not commands) with the baseline of the last
// release in tools/api/vX.Y.Z/, and fails on an incompatible change that the
// [Unreleased] section of CHANGELOG.md does not declare. Compatible
// changes (additions) pass and are printed.
//
//	go run ./cmd/apigate                 # check (CI)
//	go run ./cmd/apigate -write          # rewrite the newest baseline
//	go run ./cmd/apigate -write -baseline v0.2.0   # start a new one
//
// The baseline is one file per module, tools/api/vX.Y.Z/<last element of the
// module path>.apidiff, in the format that golang.org/x/exp/cmd/apidiff -m
// -w writes (a zip of the module path and each package's export data), so
// that `apidiff -m tools/api/v0.1.0/reuseport.apidiff github.com/b93f8b21/reuseport`
// reads it too. It lives in the tools module so that the published zips
// leave it out.
//
// Each change has a key: the package's directory in the repository ("."
// is written as the package name, reuseport), a dot, and the object as
// apidiff names it, for example `handoff.Config.Timeout` or
// `drain.(*Server).Close`; a removed package's key is its directory. An
// incompatible change is declared when a line of CHANGELOG.md's
// [Unreleased] section holds the word BREAKING and the key in backquotes:
//
//	### Removed
//	- BREAKING: `handoff.Config.Timeout`: use Config.Grace.
//
// The gate prints the key of every change it refuses.
package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/token"
	"go/types"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/exp/apidiff"
	"golang.org/x/mod/semver"
	"golang.org/x/tools/go/gcexportdata"
	"golang.org/x/tools/go/packages"

	"github.com/b93f8b21/reuseport/tools/internal/published"
)

func main() {
	err := run(os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apigate:", err)
		os.Exit(1)
	}
}

// errRefused is returned when an incompatible change is not declared.
var errRefused = errors.New("incompatible API changes not declared in CHANGELOG.md's [Unreleased] section")

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("apigate", flag.ContinueOnError)
	repo := fs.String("repo", "..", "the repository checkout")
	baseline := fs.String("baseline", "", "the baseline version, a directory of tools/api/ (default: the newest there)")
	write := fs.Bool("write", false, "write the current API as the baseline instead of checking")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	apiDir := filepath.Join(*repo, "tools", "api")
	if *baseline == "" {
		v, err := newestBaseline(apiDir)
		if err != nil {
			return err
		}
		*baseline = v
	}
	if !semver.IsValid(*baseline) {
		return fmt.Errorf("-baseline %q is not a version such as v0.1.0", *baseline)
	}
	dir := filepath.Join(apiDir, *baseline)

	mods, err := published.Modules(*repo)
	if err != nil {
		return err
	}
	fset := token.NewFileSet()
	if *write {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	var refused []string
	for _, m := range mods {
		cur, err := load(fset, filepath.Join(*repo, m.Dir), m.Path)
		if err != nil {
			return fmt.Errorf("loading %s: %w", m.Path, err)
		}
		file := filepath.Join(dir, path.Base(m.Path)+".apidiff")
		if *write {
			if err := writeModule(fset, cur, file); err != nil {
				return err
			}
			fmt.Fprintf(out, "wrote %s: %d packages of %s\n", file, len(cur.Packages), m.Path)
			continue
		}
		old, err := readModule(fset, file)
		if err != nil {
			return fmt.Errorf("reading the baseline of %s: %w", m.Path, err)
		}
		if old.Path != m.Path {
			return fmt.Errorf("%s is the baseline of %s, not %s", file, old.Path, m.Path)
		}
		refused = append(refused, compare(old, cur, m.Dir, out)...)
	}
	if *write {
		return nil
	}
	declared, err := declaredKeys(filepath.Join(*repo, "CHANGELOG.md"))
	if err != nil {
		return err
	}
	var undeclared []string
	for _, key := range refused {
		if !declared[key] {
			undeclared = append(undeclared, key)
		}
	}
	if len(undeclared) == 0 {
		if len(refused) > 0 {
			fmt.Fprintf(out, "every incompatible change since %s is declared in CHANGELOG.md\n", *baseline)
		} else {
			fmt.Fprintf(out, "API compatible with %s\n", *baseline)
		}
		return nil
	}
	fmt.Fprintf(out, "\nIncompatible with %s and not declared; if intended, add under [Unreleased] in CHANGELOG.md:\n", *baseline)
	for _, key := range undeclared {
		fmt.Fprintf(out, "- BREAKING: `%s` ...\n", key)
	}
	return errRefused
}

// compare prints every change between the two APIs of the module in
// directory dir and returns the keys of the incompatible ones.
func compare(old, cur *apidiff.Module, dir string, out io.Writer) (incompatible []string) {
	pkgDir := func(pkgPath, modPath string) string {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkgPath, modPath), "/")
		d := path.Join(filepath.ToSlash(dir), rel)
		if d == "." {
			return path.Base(modPath)
		}
		return d
	}
	byDir := func(m *apidiff.Module) map[string]*types.Package {
		pkgs := map[string]*types.Package{}
		for _, p := range m.Packages {
			pkgs[pkgDir(p.Path(), m.Path)] = p
		}
		return pkgs
	}
	oldPkgs, curPkgs := byDir(old), byDir(cur)
	report := func(key, msg string, compatible bool) {
		if compatible {
			fmt.Fprintf(out, "compatible:   `%s`: %s\n", key, msg)
			return
		}
		fmt.Fprintf(out, "INCOMPATIBLE: `%s`: %s\n", key, msg)
		incompatible = append(incompatible, key)
	}
	for _, d := range sortedKeys(oldPkgs) {
		np, ok := curPkgs[d]
		if !ok {
			report(d, "package removed", false)
			continue
		}
		for _, c := range apidiff.Changes(oldPkgs[d], np).Changes {
			obj, what, _ := strings.Cut(c.Message, ": ")
			report(d+"."+obj, what, c.Compatible)
		}
	}
	for _, d := range sortedKeys(curPkgs) {
		if _, ok := oldPkgs[d]; !ok {
			report(d, "package added", true)
		}
	}
	return incompatible
}

func sortedKeys(m map[string]*types.Package) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// declaredKeys returns the backquoted keys on the lines of the
// [Unreleased] section of the changelog that say BREAKING.
func declaredKeys(changelog string) (map[string]bool, error) {
	data, err := os.ReadFile(changelog)
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	in, seen := false, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.HasPrefix(line, "## [Unreleased]")
			seen = seen || in
			continue
		}
		if !in || !strings.Contains(line, "BREAKING") {
			continue
		}
		fields := strings.Split(line, "`")
		for i := 1; i < len(fields); i += 2 {
			keys[fields[i]] = true
		}
	}
	if !seen {
		return nil, fmt.Errorf("%s has no \"## [Unreleased]\" section", changelog)
	}
	return keys, sc.Err()
}

// newestBaseline returns the highest version among the directories of tools/api.
func newestBaseline(api string) (string, error) {
	entries, err := os.ReadDir(api)
	if err != nil {
		return "", err
	}
	var best string
	for _, e := range entries {
		if e.IsDir() && semver.IsValid(e.Name()) && (best == "" || semver.Compare(e.Name(), best) > 0) {
			best = e.Name()
		}
	}
	if best == "" {
		return "", fmt.Errorf("no baseline vX.Y.Z in %s: write one with -write -baseline vX.Y.Z", api)
	}
	return best, nil
}

// load type-checks the public packages of the module in dir: neither
// commands nor internal packages, nor test files.
func load(fset *token.FileSet, dir, modPath string) (*apidiff.Module, error) {
	cfg := &packages.Config{
		Dir:  dir,
		Fset: fset,
		Mode: packages.NeedName | packages.NeedTypes,
	}
	loaded, err := packages.Load(cfg, "./...")
	if err != nil {
		return nil, err
	}
	m := &apidiff.Module{Path: modPath}
	var errs []error
	for _, p := range loaded {
		for _, e := range p.Errors {
			errs = append(errs, e)
		}
		if p.Name == "main" || isInternal(strings.TrimPrefix(p.PkgPath, modPath)) {
			continue
		}
		m.Packages = append(m.Packages, p.Types)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(m.Packages) == 0 {
		return nil, fmt.Errorf("no public packages in %s", dir)
	}
	return m, nil
}

func isInternal(rel string) bool {
	return slices.Contains(strings.Split(rel, "/"), "internal")
}

// writeModule writes the module's export data in apidiff -m -w's format.
func writeModule(fset *token.FileSet, m *apidiff.Module, file string) (err error) {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	entry, err := w.Create("module")
	if err != nil {
		return err
	}
	if _, err := io.WriteString(entry, m.Path); err != nil {
		return err
	}
	for _, p := range m.Packages {
		entry, err := w.Create(p.Path() + ".x")
		if err != nil {
			return err
		}
		if err := gcexportdata.Write(entry, fset, p); err != nil {
			return fmt.Errorf("writing %s: %w", p.Path(), err)
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.WriteFile(file, buf.Bytes(), 0o644)
}

// readModule reads a file that writeModule (or apidiff -m -w) wrote. Each
// package's export data holds what it needs of its dependencies, so each
// is read with imports of its own.
func readModule(fset *token.FileSet, file string) (*apidiff.Module, error) {
	z, err := zip.OpenReader(file)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	m := &apidiff.Module{}
	for _, f := range z.File {
		r, err := f.Open()
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return nil, err
		}
		if f.Name == "module" {
			m.Path = string(data)
			continue
		}
		pkgPath, ok := strings.CutSuffix(f.Name, ".x")
		if !ok {
			return nil, fmt.Errorf("unexpected entry %q", f.Name)
		}
		p, err := gcexportdata.Read(bytes.NewReader(data), fset, map[string]*types.Package{}, pkgPath)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", pkgPath, err)
		}
		m.Packages = append(m.Packages, p)
	}
	if m.Path == "" {
		return nil, errors.New("no module entry")
	}
	return m, nil
}
