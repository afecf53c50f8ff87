package envconfig_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane/internal/envconfig"
)

func TestEnv(t *testing.T) {
	tests := []struct {
		name   string
		given  map[string]string
		expect string // substring of the error; "" for none
	}{
		{"unset keeps defaults", map[string]string{}, ""},
		{"all valid", map[string]string{"S": "x", "B": "true", "D": "3s", "I": "7"}, ""},
		{"bad bool", map[string]string{"B": "maybe"}, `B: want true or false, got "maybe"`},
		{"bad duration", map[string]string{"D": "soon"}, `D: not a duration like 30s: "soon"`},
		{"bad int", map[string]string{"I": "x"}, `I: not a whole number: "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b, d, i := "default", false, time.Second, 1
			env := envconfig.New(func(k string) string { return tt.given[k] }, "30s")
			env.String("S", &s)
			env.Bool("B", &b)
			env.Duration("D", &d)
			env.Int("I", &i)
			err := env.Err()
			switch {
			case tt.expect == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.expect != "" && (err == nil || !strings.Contains(err.Error(), tt.expect)):
				t.Fatalf("error %v, want one containing %q", err, tt.expect)
			}
			if len(tt.given) == 0 && (s != "default" || b || d != time.Second || i != 1) {
				t.Errorf("defaults changed: %q %v %v %d", s, b, d, i)
			}
			if tt.name == "all valid" && (s != "x" || !b || d != 3*time.Second || i != 7) {
				t.Errorf("got %q %v %v %d", s, b, d, i)
			}
		})
	}
}
