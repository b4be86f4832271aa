package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// sectionHeading matches a section's heading in BENCHMARKS.md, as main
// writes it: "## 4. Restarts under load".
var sectionHeading = regexp.MustCompile(`(?m)^## [0-9]+\. (.+)$`)

// splice replaces, in a BENCHMARKS.md, the body of each section whose
// title is a key of bodies, keeping its heading, with its number, and
// everything else. It fails if a title is not there.
func splice(doc string, bodies map[string]string) (string, error) {
	headings := sectionHeading.FindAllStringSubmatchIndex(doc, -1)
	var b strings.Builder
	done := make(map[string]bool)
	last := 0
	for i, h := range headings {
		title := doc[h[2]:h[3]]
		md, ok := bodies[title]
		if !ok {
			continue
		}
		end := len(doc)
		if i+1 < len(headings) {
			end = headings[i+1][0]
		}
		b.WriteString(doc[last:h[1]])
		b.WriteString("\n\n" + strings.TrimSpace(md) + "\n")
		if end < len(doc) {
			b.WriteString("\n")
		}
		last = end
		done[title] = true
	}
	b.WriteString(doc[last:])
	for title := range bodies {
		if !done[title] {
			return "", fmt.Errorf("benchall -update: no section %q in the existing BENCHMARKS.md; run every section instead", title)
		}
	}
	return b.String(), nil
}

// updated is the BENCHMARKS.md under r.out with the sections in bodies
// replaced.
func (r *runner) updated(bodies map[string]string) (string, error) {
	old, err := os.ReadFile(filepath.Join(r.out, "BENCHMARKS.md"))
	if err != nil {
		return "", fmt.Errorf("benchall -update: %w", err)
	}
	return splice(string(old), bodies)
}

// updateNote opens each section that -update regenerates, since the
// header of the file describes the run that made the rest of it.
func (r *runner) updateNote(names []string) string {
	cmd := "cd bench && go run ./cmd/benchall -sections " + strings.Join(names, ",") + " -update -out .."
	commit := r.commit
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("*This section was regenerated alone, after the rest of this file, with `%s` (as root) on %s "+
		"at commit %s, the 1-minute load average %.1f before it began; the table at the top describes the run that "+
		"made the other sections.*\n\n", cmd, time.Now().UTC().Format("2006-01-02 15:04 MST"), commit, r.loadAtStart)
}
