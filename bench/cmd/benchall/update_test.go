package main

import (
	"strings"
	"testing"
)

// TestSplice replaces sections of a report by title, in the middle and at
// the end, and keeps everything else byte for byte.
func TestSplice(t *testing.T) {
	const doc = "# Benchmarks\n\nheader\n\n## 1. One\n\nold one\n\n## 2. Two\n\nold two\n\n### Sub\n\nold sub\n\n## 3. Three\n\nold three\n"
	got, err := splice(doc, map[string]string{"Two": "new two\n", "Three": "new three"})
	if err != nil {
		t.Fatal(err)
	}
	const want = "# Benchmarks\n\nheader\n\n## 1. One\n\nold one\n\n## 2. Two\n\nnew two\n\n## 3. Three\n\nnew three\n"
	if got != want {
		t.Errorf("spliced:\n%s\nwant:\n%s", got, want)
	}
	if _, err := splice(doc, map[string]string{"Four": "x"}); err == nil || !strings.Contains(err.Error(), `"Four"`) {
		t.Errorf("a missing section: %v", err)
	}
}
