package ingest_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ragplane/ragplane/dataplane/prose"
)

// The token counter is prose.CountTokens; these tests hold the properties Chunk relies on.
func TestCountTokens(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect int
	}{
		{name: "empty", given: "", expect: 0},
		{name: "whitespace only", given: " \t\n\u00a0\u3000", expect: 0},
		{name: "short word", given: "cat", expect: 1},
		{name: "four letters", given: "word", expect: 1},
		{name: "five letters", given: "words", expect: 2},
		{name: "long word", given: "internationalization", expect: 5},
		{name: "punctuation each", given: "Hi, there!", expect: 5},
		{name: "digits by three", given: "1234567", expect: 3},
		{name: "decimal", given: "3.14", expect: 3},
		{name: "accented Latin", given: "café naïve", expect: 3},
		{name: "Greek by two", given: "γνώση", expect: 3},
		{name: "CJK one each", given: "印刷术", expect: 3},
		{name: "kana and Hangul", given: "ひらがな한국", expect: 6},
		{name: "emoji with skin tone", given: "👍🏽", expect: 1},
		{name: "ZWJ family", given: "👨‍👩‍👧", expect: 3},
		{name: "combining mark joins its letter", given: "e\u0301e\u0301", expect: 1},
		{name: "lone combining mark", given: "\u0301", expect: 0},
		{name: "invalid UTF-8 byte", given: "a\xffb", expect: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := prose.CountTokens(tt.given); got != tt.expect {
				t.Errorf("CountTokens(%q) = %d, expect %d", tt.given, got, tt.expect)
			}
		})
	}
}

// TestCountTokensEnglishRule holds the estimate within ±30% of "1 token ≈ 4 characters" on
// English prose, the rule budgets and prices are usually quoted in.
func TestCountTokensEnglishRule(t *testing.T) {
	for name, text := range map[string]string{
		"prose":     englishProse,
		"generated": generateProse(20_000, 1),
	} {
		t.Run(name, func(t *testing.T) {
			got, rule := prose.CountTokens(text), float64(len(text))/4
			ratio := float64(got) / rule
			t.Logf("%d tokens for %d bytes: %.2f× the rule", got, len(text), ratio)
			if ratio < 0.7 || ratio > 1.3 {
				t.Errorf("CountTokens = %d for %d bytes, %.2f× the 4-characters rule (%.0f), outside ±30%%",
					got, len(text), ratio, rule)
			}
		})
	}
}

// TestCountTokensMonotonic checks that adding text, at either end, never lowers the count.
func TestCountTokensMonotonic(t *testing.T) {
	for name, text := range allSamples {
		t.Run(name, func(t *testing.T) {
			prev := 0
			for i := range text { // every rune boundary
				if got := prose.CountTokens(text[:i]); got < prev {
					t.Fatalf("CountTokens(text[:%d]) = %d < %d for a shorter prefix", i, got, prev)
				} else {
					prev = got
				}
			}
			prev = 0
			for i := len(text); i >= 0; i-- {
				if !utf8.RuneStart(text[min(i, len(text)-1)]) && i < len(text) {
					continue
				}
				if got := prose.CountTokens(text[i:]); got < prev {
					t.Fatalf("CountTokens(text[%d:]) = %d < %d for a shorter suffix", i, got, prev)
				} else {
					prev = got
				}
			}
		})
	}
}

// TestCountTokensAdditive checks that counts add up across whitespace, which Chunk relies on.
func TestCountTokensAdditive(t *testing.T) {
	for name, text := range allSamples {
		t.Run(name, func(t *testing.T) {
			sum := 0
			for _, w := range strings.Fields(text) {
				sum += prose.CountTokens(w)
			}
			if got := prose.CountTokens(text); got != sum {
				t.Errorf("CountTokens(text) = %d, sum over words = %d", got, sum)
			}
		})
	}
}

func BenchmarkCountTokens(b *testing.B) {
	text := generateProse(1<<20, 1)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		prose.CountTokens(text)
	}
}
