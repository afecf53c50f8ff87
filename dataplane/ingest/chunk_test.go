package ingest_test

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/ingest"
	"github.com/ragplane/ragplane/dataplane/prose"
)

func TestChunkRejectsSizes(t *testing.T) {
	tests := []struct {
		name          string
		size, overlap int
	}{
		{name: "zero size", size: 0, overlap: 0},
		{name: "negative size", size: -5, overlap: 0},
		{name: "negative overlap", size: 10, overlap: -1},
		{name: "overlap equal to size", size: 10, overlap: 10},
		{name: "overlap over size", size: 10, overlap: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pieces, err := ingest.Chunk("some text", tt.size, tt.overlap)
			if code := ragplane.ErrorCode(err); code != ragplane.EINVALID || pieces != nil {
				t.Errorf("Chunk(size %d, overlap %d) = %v, %v; expect EINVALID", tt.size, tt.overlap, pieces, err)
			}
		})
	}
}

// TestChunkBoundaries pins where pieces end. Words here are short so counts are easy to follow:
// "The" and "cat" are one token each, "sat." two, "U.S." four, "3.14" three.
func TestChunkBoundaries(t *testing.T) {
	type when struct{ size, overlap int }
	tests := []struct {
		name   string
		given  string
		when   when
		expect []string
	}{
		{
			name:   "fits whole",
			given:  "  The cat sat.  \n",
			when:   when{size: 10},
			expect: []string{"The cat sat."},
		},
		{
			name:   "only whitespace",
			given:  " \n\t ",
			when:   when{size: 10},
			expect: nil,
		},
		{
			name:   "sentence end beats later whitespace",
			given:  "The cat sat on the mat. The dog ran far and wide.",
			when:   when{size: 10},
			expect: []string{"The cat sat on the mat.", "The dog ran far and wide."},
		},
		{
			name:   "paragraph beats later sentence end",
			given:  "The cat sat on a mat.\n\nThe dog ran. The owl hid.",
			when:   when{size: 12},
			expect: []string{"The cat sat on a mat.", "The dog ran. The owl hid."},
		},
		{
			name:   "boundary too early is not taken",
			given:  "Hi.\n\nThe cat sat on a red mat and the dog ran off.",
			when:   when{size: 10},
			expect: []string{"Hi.\n\nThe cat sat on a red mat and", "the dog ran off."},
		},
		{
			name:   "line break beats whitespace",
			given:  "one two three\nfour five six seven",
			when:   when{size: 7},
			expect: []string{"one two three", "four five six seven"},
		},
		{
			name:   "no cut after Dr.",
			given:  "We ran far and Dr. Who ran off too.",
			when:   when{size: 8},
			expect: []string{"We ran far and Dr. Who ran", "off too."},
		},
		{
			name:   "no cut after U.S.",
			given:  "We ran far to the U.S. Army base.",
			when:   when{size: 10},
			expect: []string{"We ran far to the U.S. Army", "base."},
		},
		{
			name:   "no cut after e.g.",
			given:  "We ran far to e.g. Rome and back.",
			when:   when{size: 10},
			expect: []string{"We ran far to e.g. Rome and", "back."},
		},
		{
			name:   "sentence end in the back three quarters beats a space",
			given:  "The cat sat. The dog ran far and wide.",
			when:   when{size: 10},
			expect: []string{"The cat sat.", "The dog ran far and wide."},
		},
		{
			name:   "no cut inside or after a decimal number",
			given:  "The cat sat. Pi is 3.14 and e is 2.72 or so. The end.",
			when:   when{size: 18},
			expect: []string{"The cat sat. Pi is 3.14 and e is 2.72 or so.", "The end."},
		},
		{
			name:   "a year ends a sentence",
			given:  "The cat sat. It was in 2024. The dog ran off.",
			when:   when{size: 13},
			expect: []string{"The cat sat. It was in 2024.", "The dog ran off."},
		},
		{
			name:   "long sentence split at whitespace",
			given:  "aaa bbb ccc ddd eee fff",
			when:   when{size: 4},
			expect: []string{"aaa bbb ccc ddd", "eee fff"},
		},
		{
			name:   "word over size split by runes",
			given:  "abcdefghijklmnopqrstuvwxyz",
			when:   when{size: 3},
			expect: []string{"abcdefghijkl", "mnopqrstuvwx", "yz"},
		},
		{
			name:   "word over size split after punctuation",
			given:  "see example.com/aaaa/bbbbbbbb/cc ok",
			when:   when{size: 8, overlap: 2},
			expect: []string{"see", "example.com/aaaa/", "bbbbbbbb/cc", "ok"},
		},
		{
			name:   "overlap repeats whole sentences",
			given:  "The cat sat. The dog ran. The owl hid. The bee hid.",
			when:   when{size: 8, overlap: 4},
			expect: []string{"The cat sat. The dog ran.", "The dog ran. The owl hid.", "The owl hid. The bee hid."},
		},
		{
			name:   "overlap falls back to words",
			given:  "aaa bbb ccc ddd eee fff ggg",
			when:   when{size: 4, overlap: 2},
			expect: []string{"aaa bbb ccc ddd", "ccc ddd eee fff", "eee fff ggg"},
		},
		{
			name:   "CJK without spaces cut after a full stop",
			given:  "知识传播得很慢。而且错误百出。",
			when:   when{size: 10},
			expect: []string{"知识传播得很慢。", "而且错误百出。"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pieces, err := ingest.Chunk(tt.given, tt.when.size, tt.when.overlap)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pieces {
				got = append(got, p.Content)
			}
			if !reflect.DeepEqual(got, tt.expect) {
				t.Errorf("Chunk(size %d, overlap %d) =\n%q\nexpect\n%q", tt.when.size, tt.when.overlap, got, tt.expect)
			}
			checkPieces(t, tt.given, tt.when.size, tt.when.overlap, pieces)
		})
	}
}

// TestChunkInvariants runs the checks FuzzChunk makes over the samples at several sizes.
func TestChunkInvariants(t *testing.T) {
	texts := map[string]string{
		"generated": generateProse(50_000, 7),
		"long word": "start " + strings.Repeat("x", 5000) + " end",
		"one line":  strings.Repeat("word ", 2000),
	}
	for name, text := range allSamples {
		texts[name] = text
	}
	for name, text := range texts {
		for _, when := range [][2]int{{1, 0}, {2, 1}, {5, 2}, {16, 4}, {64, 16}, {256, 32}, {512, 0}} {
			pieces, err := ingest.Chunk(text, when[0], when[1])
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			checkPieces(t, text, when[0], when[1], pieces)
			again, _ := ingest.Chunk(text, when[0], when[1])
			if !reflect.DeepEqual(pieces, again) {
				t.Errorf("%s size %d: not deterministic", name, when[0])
			}
		}
	}
}

// TestChunkUnicode checks that pieces of non-Latin text cut between runes and keep combining
// marks and joiners with their base.
func TestChunkUnicode(t *testing.T) {
	for name, text := range allSamples {
		for _, size := range []int{1, 2, 3, 7} {
			pieces, err := ingest.Chunk(text, size, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pieces {
				if !utf8.ValidString(p.Content) {
					t.Errorf("%s size %d: piece %q is not valid UTF-8", name, size, p.Content)
				}
				if r, _ := utf8.DecodeRuneInString(p.Content); r == '\u0301' || r == '\u200d' || r == '\U0001F3FD' {
					t.Errorf("%s size %d: piece %q starts with a mark or joiner", name, size, p.Content)
				}
			}
		}
	}
}

// checkPieces asserts what every result of Chunk must satisfy: pieces within size, exact token
// counts and offsets, in order, overlapping by at most overlap tokens, and together covering every
// non-space rune of text.
func checkPieces(tb testing.TB, text string, size, overlap int, pieces []ingest.Piece) {
	tb.Helper()
	var rebuilt strings.Builder
	prev := ingest.Piece{Start: -1}
	for i, p := range pieces {
		switch {
		case p.Tokens > size:
			tb.Fatalf("piece %d has %d tokens, size %d: %q", i, p.Tokens, size, p.Content)
		case p.Start < 0 || p.End > len(text) || p.Start >= p.End || text[p.Start:p.End] != p.Content:
			tb.Fatalf("piece %d: Content %q is not text[%d:%d]", i, p.Content, p.Start, p.End)
		case p.Tokens != prose.CountTokens(p.Content):
			tb.Fatalf("piece %d: Tokens %d, CountTokens %d", i, p.Tokens, prose.CountTokens(p.Content))
		case strings.TrimSpace(p.Content) != p.Content:
			tb.Fatalf("piece %d has surrounding whitespace: %q", i, p.Content)
		case p.Start <= prev.Start || p.End <= prev.End:
			tb.Fatalf("piece %d [%d,%d) not after piece %d [%d,%d)", i, p.Start, p.End, i-1, prev.Start, prev.End)
		}
		from := max(prev.End, 0)
		if p.Start > from {
			if gap := text[from:p.Start]; strings.TrimSpace(gap) != "" {
				tb.Fatalf("text %q between pieces %d and %d is in no piece", gap, i-1, i)
			}
			from = p.Start
		} else if ov := prose.CountTokens(text[p.Start:from]); ov > overlap {
			tb.Fatalf("piece %d overlaps the previous one by %d tokens, overlap %d", i, ov, overlap)
		}
		rebuilt.WriteString(text[from:p.End])
		prev = p
	}
	if rest := text[max(prev.End, 0):]; strings.TrimSpace(rest) != "" {
		tb.Fatalf("text %q after the last piece is in no piece", rest)
	}
	if got, want := strings.Join(strings.Fields(rebuilt.String()), ""), strings.Join(strings.Fields(text), ""); got != want {
		tb.Fatalf("pieces minus overlaps do not rebuild the text's non-space content:\n%q\n%q", got, want)
	}
}

func FuzzChunk(f *testing.F) {
	// Small seeds: the fuzzer minimises every new input for up to a minute, which on kilobytes of
	// text eats a 30-second run. TestChunkInvariants covers the long samples.
	for _, text := range allSamples {
		f.Add(text[:min(len(text), 160)], uint16(16), uint16(4))
	}
	f.Add("The cat sat. The dog ran.\n\nDr. Who? e.g. 3.14!", uint16(3), uint16(1))
	f.Add(strings.Repeat("a", 100)+" b", uint16(2), uint16(1))
	f.Add("a\xffb \x00 \u0301\u0301 👩🏽‍💻", uint16(1), uint16(0))
	f.Fuzz(func(t *testing.T, text string, rawSize, rawOverlap uint16) {
		size := int(rawSize)%300 + 1
		overlap := int(rawOverlap) % size
		pieces, err := ingest.Chunk(text, size, overlap)
		if err != nil {
			t.Fatalf("Chunk(size %d, overlap %d): %v", size, overlap, err)
		}
		checkPieces(t, text, size, overlap, pieces)
		if again, _ := ingest.Chunk(text, size, overlap); !reflect.DeepEqual(pieces, again) {
			t.Fatal("not deterministic")
		}
		if _, err := ingest.Chunk(text, overlap, size); ragplane.ErrorCode(err) != ragplane.EINVALID {
			t.Fatalf("Chunk(size %d, overlap %d) = %v, expect EINVALID", overlap, size, err)
		}
	})
}

// BenchmarkChunk chunks about 1 MB of prose the way ingestion does by default.
func BenchmarkChunk(b *testing.B) {
	text := generateProse(1<<20, 1)
	b.SetBytes(int64(len(text)))
	chunks := 0
	for b.Loop() {
		pieces, err := ingest.Chunk(text, 256, 32)
		if err != nil {
			b.Fatal(err)
		}
		chunks += len(pieces)
	}
	b.ReportMetric(float64(chunks)/b.Elapsed().Seconds(), "chunks/s")
}
