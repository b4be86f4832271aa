package main

import (
	"strings"
	"testing"
)

// events writes test2json lines: each argument is "Action Test [Output]".
func events(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		action, rest, _ := strings.Cut(l, " ")
		test, output, _ := strings.Cut(rest, " ")
		if test == "-" {
			test = ""
		}
		b.WriteString(`{"Action":"` + action + `","Test":"` + test + `","Output":"` + output + `\n"}` + "\n")
	}
	return b.String()
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		wantErr bool
		want    []string // in the summary
	}{
		{"all pass", events("run TestA", "pass TestA", "run TestB", "run TestB/x", "pass TestB/x", "pass TestB", "pass -"),
			false, []string{"tests 2 passed, 0 failed, 0 skipped; subtests 1 passed, 0 failed, 0 skipped"}},
		{"a subtest fails", events("run TestA", "run TestA/x", "output TestA/x boom", "fail TestA/x", "fail TestA", "fail -"),
			true, []string{"FAILED TestA/x", "boom"}},
		{"skip with reason", events("run TestA", "pass TestA", "run TestB", "output TestB x_test.go:9: under qemu", "skip TestB", "pass -"),
			false, []string{"1 skipped", "skipped TestB: x_test.go:9: under qemu"}},
		{"binary crashes after passing tests", events("run TestA", "pass TestA", "output - panic: boom", "fail -"),
			true, []string{"did not pass", "panic: boom"}},
		{"a test never finishes", events("run TestA", "output TestA hanging", "fail -"),
			true, []string{"never finished", "hanging"}},
		{"nothing ran", events("pass -"), true, nil},
		{"skip in a child process", events("run TestN",
			"output TestN x_test.go:5: ran in a private network namespace:",
			"output TestN         === RUN   TestN",
			"output TestN         === RUN   TestN/m",
			"output TestN             y_test.go:7: no multicast here",
			"output TestN         --- PASS: TestN (0.01s)",
			"output TestN             --- SKIP: TestN/m (0.00s)",
			"pass TestN", "pass -"),
			false, []string{"tests 1 passed, 0 failed, 0 skipped; subtests 0 passed, 0 failed, 0 skipped; 1 skipped in child processes",
				"skipped TestN/m (in a child process of TestN): y_test.go:7: no multicast here"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			err := summarize(strings.NewReader(tc.in), &out, "arm64 ./x")
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want an error: %v", err, tc.wantErr)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("summary does not say %q:\n%s", w, out.String())
				}
			}
		})
	}
}
