package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGateCatchesRemovedName removes an exported name from the root
// package of a copy of the repository and checks that the gate refuses
// the change, naming it, until CHANGELOG.md declares it. So that the test
// holds whatever the API becomes, the name is one the test adds before
// writing the copy's baseline: removing it afterwards is, to the gate, a
// removal like any other.
func TestGateCatchesRemovedName(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks both published modules three times")
	}
	repo := copyRepo(t)
	probe := filepath.Join(repo, "zz_gateprobe.go")
	writeFile(t, probe, "package reuseport\n\n// GateProbe exists only in the test's baseline.\nfunc GateProbe() {}\n")
	gate(t, repo, "-write", "-baseline", "v9.9.9")

	out, err := gate(t, repo)
	if err != nil {
		t.Fatalf("unchanged API refused: %v\n%s", err, out)
	}

	// An addition passes, and is reported.
	writeFile(t, filepath.Join(repo, "zz_gateadded.go"), "package reuseport\n\n// GateAdded is new since the baseline.\nfunc GateAdded() {}\n")
	out, err = gate(t, repo)
	if err != nil {
		t.Fatalf("an added name was refused: %v\n%s", err, out)
	}
	if !strings.Contains(out, "compatible:   `reuseport.GateAdded`: added") {
		t.Fatalf("the gate's report does not list the addition of reuseport.GateAdded:\n%s", out)
	}

	if err := os.Remove(probe); err != nil {
		t.Fatal(err)
	}
	out, err = gate(t, repo)
	if !errors.Is(err, errRefused) {
		t.Fatalf("removed exported name passed the gate: err = %v\n%s", err, out)
	}
	if !strings.Contains(out, "INCOMPATIBLE: `reuseport.GateProbe`: removed") ||
		!strings.Contains(out, "- BREAKING: `reuseport.GateProbe`") {
		t.Fatalf("the gate's report does not name reuseport.GateProbe:\n%s", out)
	}

	// Declared anywhere but under [Unreleased], it is still refused.
	changelog := filepath.Join(repo, "CHANGELOG.md")
	data, err := os.ReadFile(changelog)
	if err != nil {
		t.Fatal(err)
	}
	const unreleased = "## [Unreleased]\n"
	if !bytes.Contains(data, []byte(unreleased)) {
		t.Fatalf("CHANGELOG.md has no %q line", unreleased)
	}
	decl := "\n### Removed\n\n- BREAKING: `reuseport.GateProbe` is gone.\n"
	writeFile(t, changelog, string(data)+decl)
	if out, err := gate(t, repo); !errors.Is(err, errRefused) {
		t.Fatalf("a declaration outside [Unreleased] was accepted: err = %v\n%s", err, out)
	}

	declared := strings.Replace(string(data), unreleased, unreleased+decl, 1)
	writeFile(t, changelog, declared)
	if out, err := gate(t, repo); err != nil {
		t.Fatalf("declared removal refused: %v\n%s", err, out)
	}
}

// gate runs the gate on the repository at repo and returns what it printed.
func gate(t *testing.T, repo string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(append([]string{"-repo", repo}, args...), &out)
	t.Logf("apigate %s:\n%s", strings.Join(args, " "), out.String())
	return out.String(), err
}

// copyRepo copies the published modules' files (all but .git, bench and
// tools) into a temporary directory.
func copyRepo(t *testing.T) string {
	t.Helper()
	src, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch rel {
			case ".git", "bench", "tools":
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
