package hashing

import (
	"hash/fnv"
	"testing"
)

// The inlined FNV-1a must stay the stdlib algorithm: stored vectors depend on it.
func TestFNVMatchesStdlib(t *testing.T) {
	for _, s := range []string{"", "a", "hello world", "Ünïcödé", "\x00\xff"} {
		h := fnv.New64a()
		_, _ = h.Write([]byte(s))
		if got, want := fnvString(fnvOffset, s), h.Sum64(); got != want {
			t.Errorf("fnvString(%q) = %x, want %x", s, got, want)
		}
	}
}
