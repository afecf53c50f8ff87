package glove

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestTokens(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect []string
	}{
		{name: "empty", given: "", expect: nil},
		{name: "lower case, punctuation split off", given: "Hello, World!", expect: []string{"hello", ",", "world", "!"}},
		{name: "joiners inside a word", given: "state-of-the-art 1,000 3.5 and/or AT&T", expect: []string{"state-of-the-art", "1,000", "3.5", "and/or", "at&t"}},
		{name: "joiners at the edges", given: "-well- 'quoted' end.", expect: []string{"-", "well", "-", "'", "quoted", "'", "end", "."}},
		{name: "apostrophes", given: "Don’t stop John's", expect: []string{"don't", "stop", "john's"}},
		{name: "abbreviation", given: "the U.S. army", expect: []string{"the", "u.s", ".", "army"}},
		{name: "symbols and numbers", given: "$5 (50%)", expect: []string{"$", "5", "(", "50", "%", ")"}},
		{name: "unicode letters", given: "Café Zürich\tnaïve", expect: []string{"café", "zürich", "naïve"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tokens(tc.given, func(tok string) { got = append(got, tok) })
			if !slices.Equal(got, tc.expect) {
				t.Errorf("tokens(%q) = %q, want %q", tc.given, got, tc.expect)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	e := newEmbedder(&table{dim: Dimensions, vecs: make([]float32, 6*Dimensions),
		words: []string{"do", "n't", "john", "'s", "state-of-the-art", "art"}})
	tests := []struct {
		name   string
		given  string
		expect []int32
	}{
		{name: "whole word", given: "state-of-the-art", expect: []int32{4}},
		{name: "parts", given: "pop-art", expect: []int32{5}},
		{name: "n't", given: "don't", expect: []int32{0, 1}},
		{name: "'s", given: "john's", expect: []int32{2, 3}},
		{name: "unknown", given: "qwzx", expect: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.lookup(tc.given, nil); !slices.Equal(got, tc.expect) {
				t.Errorf("lookup(%q) = %v, want %v", tc.given, got, tc.expect)
			}
		})
	}
}

// BenchmarkLoad reads the real compact file, bypassing the per-process cache (RAGPLANE_MODEL_DIR).
func BenchmarkLoad(b *testing.B) {
	dir := os.Getenv("RAGPLANE_MODEL_DIR")
	if dir == "" {
		b.Skip("RAGPLANE_MODEL_DIR is not set (run `make models`)")
	}
	path := filepath.Join(dir, Package, FileName)
	for b.Loop() {
		if _, err := load(path, dir); err != nil {
			b.Fatal(err)
		}
	}
}
