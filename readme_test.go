package ragplane_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// README.md documents every environment variable the three services read, and links nothing
// outside the repository.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	read := regexp.MustCompile(`(?:env\.[A-Z][a-z]+|Lookup)\("([A-Z][A-Z0-9_]*[A-Z0-9])"`)
	found := 0
	for _, f := range []string{"controlplane/config.go", "dataplane/config.go", "proxy/config.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range read.FindAllStringSubmatch(string(src), -1) {
			found++
			if !strings.Contains(string(readme), "`"+m[1]+"`") {
				t.Errorf("%s reads %s, which README.md does not document", f, m[1])
			}
		}
	}
	if found < 50 {
		t.Fatalf("found only %d variables in the config files: the pattern no longer matches how they are read", found)
	}
	if m := regexp.MustCompile(`\]\((\.\./[^)]*|/[^)]*)\)`).FindAllString(string(readme), -1); len(m) > 0 {
		t.Errorf("README.md links outside the repository: %v", m)
	}
}
