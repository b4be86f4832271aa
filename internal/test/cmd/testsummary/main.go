// Command testsummary reads the events of one test binary's run, as
// `go tool test2json` writes them, and prints how many tests passed, failed
// and were skipped, the reason given for every skip, and the whole output
// of every failure. It exits 1 if anything failed or nothing ran, so a CI
// step can use it as its verdict:
//
//	go tool test2json -p ./handoff ./handoff.test -test.v=test2json | testsummary -label "arm64 ./handoff"
//
// CI (scripts/ci-qemu.sh) runs the tests of other CPUs under qemu-user this
// way: the figures are the record, and no skip goes unsaid.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of test2json output.
type event struct {
	Action string
	Test   string
	Output string
}

// result is what became of one test or subtest.
type result struct {
	name   string
	action string // pass, fail or skip; empty if it never finished
	output []string
}

// counts tallies results by final action.
type counts struct{ pass, fail, skip, unfinished int }

func (c *counts) add(action string) {
	switch action {
	case "pass":
		c.pass++
	case "fail":
		c.fail++
	case "skip":
		c.skip++
	default:
		c.unfinished++
	}
}

func (c counts) String() string {
	s := fmt.Sprintf("%d passed, %d failed, %d skipped", c.pass, c.fail, c.skip)
	if c.unfinished > 0 {
		s += fmt.Sprintf(", %d never finished", c.unfinished)
	}
	return s
}

func main() {
	label := flag.String("label", "", "name of the run in the summary, such as \"arm64 ./handoff\"")
	flag.Parse()
	if err := summarize(os.Stdin, os.Stdout, *label); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %s: %v\n", *label, err)
		os.Exit(1)
	}
}

func summarize(r io.Reader, w io.Writer, label string) error {
	var (
		order   []*result
		byName  = map[string]*result{}
		pkgOut  []string
		pkgDone string
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// test2json passes through what it cannot frame.
			pkgOut = append(pkgOut, sc.Text()+"\n")
			continue
		}
		if e.Test == "" {
			switch e.Action {
			case "output":
				pkgOut = append(pkgOut, e.Output)
			case "pass", "fail", "skip":
				pkgDone = e.Action
			}
			continue
		}
		res := byName[e.Test]
		if res == nil {
			res = &result{name: e.Test}
			byName[e.Test] = res
			order = append(order, res)
		}
		switch e.Action {
		case "output":
			res.output = append(res.output, e.Output)
		case "pass", "fail", "skip":
			res.action = e.Action
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}

	var tests, subtests counts
	var inChildren int
	for _, res := range order {
		if strings.Contains(res.name, "/") {
			subtests.add(res.action)
		} else {
			tests.add(res.action)
		}
		inChildren += len(childSkips(res.output, byName))
	}
	fmt.Fprintf(w, "%s: tests %v; subtests %v", label, tests, subtests)
	if inChildren > 0 {
		fmt.Fprintf(w, "; %d skipped in child processes", inChildren)
	}
	fmt.Fprintln(w)
	for _, res := range order {
		switch res.action {
		case "skip":
			fmt.Fprintf(w, "  skipped %s: %s\n", res.name, reason(res.output))
		case "fail", "":
			fmt.Fprintf(w, "  FAILED %s:\n%s", res.name, strings.Join(res.output, ""))
		}
		for _, sk := range childSkips(res.output, byName) {
			fmt.Fprintf(w, "  skipped %s (in a child process of %s): %s\n", sk.name, res.name, sk.reason)
		}
	}

	switch {
	case pkgDone != "pass" && pkgDone != "skip":
		fmt.Fprintf(w, "%s: the test binary did not pass (%q):\n%s", label, pkgDone, strings.Join(pkgOut, ""))
		return fmt.Errorf("the test binary did not pass")
	case tests.fail+subtests.fail+tests.unfinished+subtests.unfinished > 0:
		return fmt.Errorf("%d tests and %d subtests failed or never finished", tests.fail+tests.unfinished, subtests.fail+subtests.unfinished)
	case tests.pass == 0:
		return fmt.Errorf("no test passed")
	}
	return nil
}

// A childSkip is a test skipped in a child process that a test of this run
// started, such as the private network namespace of internal/test/nstest.
type childSkip struct{ name, reason string }

// childSkips finds the skips in the verbose output of child test processes
// that a test quotes in its log, as internal/test/nstest does: "--- SKIP: NAME"
// lines for tests this run has no events of, each with what NAME logged
// after its "=== RUN" line.
func childSkips(output []string, known map[string]*result) []childSkip {
	var (
		skips   []childSkip
		logged  = map[string][]string{}
		current string
	)
	for _, line := range output {
		line = strings.TrimSpace(line)
		if name, ok := framing(line, "=== RUN", "=== CONT", "=== NAME"); ok {
			current = name
			continue
		}
		if name, ok := framing(line, "--- SKIP:"); ok {
			if known[name] == nil {
				r := strings.Join(logged[name], " ")
				if r == "" {
					r = "(no reason given)"
				}
				skips = append(skips, childSkip{name, r})
			}
			current = ""
			continue
		}
		if strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "=== ") {
			current = ""
			continue
		}
		if current != "" && line != "" {
			logged[current] = append(logged[current], line)
		}
	}
	return skips
}

// framing returns the test name of a framing line that starts with one of
// the prefixes, such as "=== RUN   TestA/b" or "--- SKIP: TestA (0.00s)".
func framing(line string, prefixes ...string) (string, bool) {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(line, p); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0], true
			}
		}
	}
	return "", false
}

// reason joins what a skipped test logged, less the framing lines of the
// testing package, into one line.
func reason(output []string) string {
	var parts []string
	for _, line := range output {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "=== ") || strings.HasPrefix(line, "--- SKIP") {
			continue
		}
		parts = append(parts, line)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " ")
}
