package ingest_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/ingest"
)

func TestExtract(t *testing.T) {
	type when struct{ mediaType, filename string }
	tests := []struct {
		name       string
		given      []byte
		when       when
		expect     string
		expectCode string
	}{
		{
			name:   "plain text is normalised",
			given:  []byte("Hello  \r\nworld\r\n\r\n\r\n\r\nBye\r\n"),
			when:   when{mediaType: "text/plain; charset=utf-8"},
			expect: "Hello\nworld\n\nBye",
		},
		{
			name:   "media type case and parameters",
			given:  []byte("# Title"),
			when:   when{mediaType: "Text/Markdown; charset=UTF-8; variant=GFM"},
			expect: "Title",
		},
		{
			name:   "markdown alias",
			given:  []byte("**bold**"),
			when:   when{mediaType: "text/x-markdown"},
			expect: "bold",
		},
		{
			name:   "declared type wins over the extension",
			given:  []byte("# not a heading"),
			when:   when{mediaType: "text/plain", filename: "notes.md"},
			expect: "# not a heading",
		},
		{
			name:   "sniffed by .md",
			given:  []byte("# Title\n\nSome *text*."),
			when:   when{filename: "notes.md"},
			expect: "Title\n\nSome text.",
		},
		{
			name:   "sniffed by .markdown behind octet-stream",
			given:  []byte("## Title ##"),
			when:   when{mediaType: "application/octet-stream", filename: "dir/NOTES.MARKDOWN"},
			expect: "Title",
		},
		{
			name:   "sniffed by .htm",
			given:  []byte("<p>a</p><p>b</p>"),
			when:   when{filename: "page.htm"},
			expect: "a\n\nb",
		},
		{
			name:   "sniffed by .txt",
			given:  []byte("<p>kept as text</p>"),
			when:   when{filename: "a.txt"},
			expect: "<p>kept as text</p>",
		},
		{
			name:   "sniffed HTML by content",
			given:  []byte("<!DOCTYPE html><html><body><h1>Hi</h1><p>there</p></body></html>"),
			when:   when{filename: "upload"},
			expect: "Hi\n\nthere",
		},
		{
			name:   "sniffed plain text by content",
			given:  []byte("just words"),
			when:   when{mediaType: "application/octet-stream"},
			expect: "just words",
		},
		{
			name:   "sniffed PDF by content",
			given:  MustPDF(t, "Sniffed."),
			when:   when{filename: "scan.bin"},
			expect: "Sniffed.",
		},
		{
			name:       "unsupported declared type",
			given:      []byte("PNG"),
			when:       when{mediaType: "image/png"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "unsupported sniffed type",
			given:      []byte("PK\x03\x04\x14\x00\x06\x00"),
			when:       when{filename: "report.docx"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "unparsable media type",
			given:      []byte("x"),
			when:       when{mediaType: "text/"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "charset other than UTF-8",
			given:      []byte("caf\xe9"),
			when:       when{mediaType: "text/plain; charset=iso-8859-1"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "UTF-16 sniffed by its BOM",
			given:      []byte("\xff\xfeh\x00i\x00"),
			when:       when{filename: "upload"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "invalid UTF-8",
			given:      []byte("caf\xe9"),
			when:       when{mediaType: "text/plain"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "NUL in markdown",
			given:      []byte("a\x00b"),
			when:       when{mediaType: "text/markdown"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "empty",
			given:      nil,
			when:       when{mediaType: "text/plain"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "HTML with nothing visible",
			given:      []byte("<html><head><title>t</title></head><body><script>x()</script></body></html>"),
			when:       when{mediaType: "text/html"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "HTML nested deeper than the parser allows",
			given:      []byte(strings.Repeat("<div>", 1000) + "deep"),
			when:       when{mediaType: "text/html"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "markdown that is only syntax",
			given:      []byte("---\n\n***\n"),
			when:       when{mediaType: "text/markdown"},
			expectCode: ragplane.EINVALID,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ingest.Extract(tt.when.mediaType, tt.when.filename, tt.given)
			if code := ragplane.ErrorCode(err); code != tt.expectCode {
				t.Fatalf("error code %q (%v), expect %q", code, err, tt.expectCode)
			}
			if got != tt.expect {
				t.Errorf("Extract = %q, expect %q", got, tt.expect)
			}
		})
	}
}

// TestExtractUnsupportedMessage checks the message a client sees names its type and the choices.
func TestExtractUnsupportedMessage(t *testing.T) {
	for _, when := range [][2]string{{"image/png", ""}, {"", "report.docx"}} {
		_, err := ingest.Extract(when[0], when[1], []byte("PK\x03\x04\x14\x00\x06\x00"))
		msg := ragplane.ErrorMessage(err)
		for _, want := range []string{"application/", "text/plain", "text/markdown", "text/html", "application/pdf"} {
			if !strings.Contains(msg, want) {
				t.Errorf("Extract(%q, %q) message %q does not name %q", when[0], when[1], msg, want)
			}
		}
	}
}

func TestExtractMarkdown(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect string
	}{
		{name: "ATX headings", given: "# One\n\n### Three ###\n\n#hashtag", expect: "One\n\nThree\n\n#hashtag"},
		{name: "setext heading", given: "Title\n=====\n\nSub\n---\nbody", expect: "Title\n\nSub\n\nbody"},
		{name: "emphasis", given: "*a* **b** ***c*** _d_ __e__ ~~f~~", expect: "a b c d e f"},
		{name: "nested emphasis", given: "**bold and *italic* inside**", expect: "bold and italic inside"},
		{name: "not emphasis", given: "2 * 3 * 4, snake_case_name, a*b, 5 _ 6", expect: "2 * 3 * 4, snake_case_name, a*b, 5 _ 6"},
		{name: "escapes", given: `\*not emphasis\* and \# and \\`, expect: `*not emphasis* and # and \`},
		{name: "inline link", given: "See [the docs](https://example.com/a_(b) \"Title\") now.", expect: "See the docs now."},
		{name: "reference link and definition", given: "See [the docs][d] or [this][].\n\n[d]: https://example.com\n[this]: /x", expect: "See the docs or this."},
		{name: "bare brackets kept", given: "an array [1, 2] here", expect: "an array [1, 2] here"},
		{name: "image keeps alt", given: "![a diagram](img.png) below", expect: "a diagram below"},
		{name: "link with emphasis", given: "[**bold** link](x)", expect: "bold link"},
		{name: "autolink", given: "Mail <ops@example.com> or <https://example.com>, 1 < 2 > 0", expect: "Mail ops@example.com or https://example.com, 1 < 2 > 0"},
		{name: "code span", given: "Run `go test ./...` or `` a`b ``", expect: "Run go test ./... or a`b"},
		{name: "code fence keeps code", given: "Intro\n\n```go\nfunc *main*() {\n\n\n    x := a_b_c\n}\n```\n\nAfter", expect: "Intro\n\nfunc *main*() {\n\n    x := a_b_c\n}\n\nAfter"},
		{name: "tilde fence", given: "~~~\n# not a heading\n~~~", expect: "# not a heading"},
		{name: "block quote", given: "> quoted **text**\n> > nested", expect: "quoted text\nnested"},
		{name: "lists", given: "* one\n+ two\n- three\n1. four\n   - five", expect: "- one\n- two\n- three\n1. four\n- five"},
		{name: "thematic break", given: "a\n\n* * *\n\nb", expect: "a\n\nb"},
		{
			name:   "table",
			given:  "| Name | Age | Note |\n|:-----|----:|------|\n| **Alice** | 30 | a \\| b |\n| Bob | | |\n\nAfter",
			expect: "Name: Alice; Age: 30; Note: a | b\nName: Bob\n\nAfter",
		},
		{name: "table without body", given: "a | b\n--- | ---", expect: "a; b"},
		{name: "pipe without delimiter row is text", given: "a | b\nc | d", expect: "a | b\nc | d"},
		{name: "unicode", given: "# Καλημέρα\n\n**印刷** _🚀_", expect: "Καλημέρα\n\n印刷 🚀"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ingest.Extract(ingest.TypeMarkdown, "", []byte(tt.given))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.expect {
				t.Errorf("Extract(markdown %q) =\n%q\nexpect\n%q", tt.given, got, tt.expect)
			}
		})
	}
}

func TestExtractHTML(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect string
	}{
		{
			name: "document",
			given: `<!DOCTYPE html><html><head><title>Dropped</title><style>p{color:red}</style>
				<script>var x = "<p>no</p>";</script></head>
				<body><nav><a href="/">Home</a></nav>
				<h1>Title &amp; more</h1>
				<p>First   paragraph
				   spans lines with <b>bold</b>, <i>it</i>alic and&nbsp;entities: &lt;tag&gt; &eacute; &#x1F680;.</p>
				<noscript>Enable JavaScript</noscript>
				<div>Block<div>nested block</div></div>
				</body></html>`,
			expect: "Home\n\nTitle & more\n\nFirst paragraph spans lines with bold, italic and entities: <tag> é 🚀.\n\nBlock\n\nnested block",
		},
		{name: "line breaks", given: "<p>one<br>two<br/>three</p>", expect: "one\ntwo\nthree"},
		{name: "lists", given: "<ul><li>one</li><li>two <em>2</em></li></ul><ol><li>three</li></ol>", expect: "one\ntwo 2\n\nthree"},
		{name: "table rows become lines", given: "<table><tr><th>Name</th><th>Age</th></tr><tr><td>Alice</td><td>30</td></tr></table>", expect: "Name; Age\nAlice; 30"},
		{name: "pre keeps whitespace", given: "<p>x</p><pre>  a\n    b</pre><p>y</p>", expect: "x\n\n  a\n    b\n\ny"},
		{name: "template and comments dropped", given: "<p>a<!-- hidden --></p><template><p>t</p></template><p>b</p>", expect: "a\n\nb"},
		{name: "fragment without html element", given: "plain <b>text</b> only", expect: "plain text only"},
		{name: "nesting the parser accepts", given: strings.Repeat("<span>", 400) + "deep" + strings.Repeat("</span>", 400), expect: "deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ingest.Extract(ingest.TypeHTML, "", []byte(tt.given))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.expect {
				t.Errorf("Extract(html) =\n%q\nexpect\n%q", got, tt.expect)
			}
		})
	}
}

func TestExtractPDF(t *testing.T) {
	tests := []struct {
		name       string
		given      []byte
		expect     string
		expectCode string
	}{
		{name: "one page", given: MustPDF(t, "Hello PDF world."), expect: "Hello PDF world."},
		{name: "lines and escapes", given: MustPDF(t, "First line (with parens)\nSecond line \\ done"), expect: "First line (with parens)\nSecond line \\ done"},
		{name: "pages become paragraphs", given: MustPDF(t, "Page one.", "Page two.", "Page three."), expect: "Page one.\n\nPage two.\n\nPage three."},
		{name: "blank page skipped", given: MustPDF(t, "Before.", "", "After."), expect: "Before.\n\nAfter."},
		{name: "no text", given: MustPDF(t, ""), expectCode: ragplane.EINVALID},
		{name: "encrypted", given: encryptedPDF(t), expectCode: ragplane.EINVALID},
		{name: "not a PDF", given: []byte("%PDF-1.4\nthis is not really a PDF\n"), expectCode: ragplane.EMALFORMED},
		{name: "truncated", given: MustPDF(t, "Hello")[:200], expectCode: ragplane.EMALFORMED},
		{name: "empty", given: nil, expectCode: ragplane.EMALFORMED},
		{name: "page tree loops", given: cyclicPDF(t), expectCode: ragplane.EMALFORMED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ingest.Extract(ingest.TypePDF, "doc.pdf", tt.given)
			if code := ragplane.ErrorCode(err); code != tt.expectCode {
				t.Fatalf("error code %q (%v), expect %q", code, err, tt.expectCode)
			}
			if got != tt.expect {
				t.Errorf("Extract(pdf) = %q, expect %q", got, tt.expect)
			}
		})
	}
}

func TestExtractTooLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates MaxTextBytes")
	}
	big := bytes.Repeat([]byte("word "), ingest.MaxTextBytes/5+1)
	if _, err := ingest.Extract(ingest.TypePlain, "", big); ragplane.ErrorCode(err) != ragplane.ETOOLARGE {
		t.Errorf("Extract of %d bytes: %v, expect ETOOLARGE", len(big), err)
	}
}

// MustPDF returns a minimal PDF 1.4 with one page per element of pages, each line of a page
// shown in Helvetica; an empty page has an empty content stream.
func MustPDF(tb testing.TB, pages ...string) []byte {
	tb.Helper()
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"", // the page tree, once the kids are numbered
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var kids []string
	for _, page := range pages {
		var content strings.Builder
		if page != "" {
			content.WriteString("BT\n/F1 12 Tf\n14 TL\n72 720 Td\n")
			for _, line := range strings.Split(page, "\n") {
				esc := strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(line)
				fmt.Fprintf(&content, "(%s) Tj T*\n", esc)
			}
			content.WriteString("ET")
		}
		n := len(objects) + 1
		kids = append(kids, fmt.Sprintf("%d 0 R", n))
		objects = append(objects,
			fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", n+1),
			fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", content.Len(), content.String()))
	}
	objects[1] = fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(pages))
	return buildPDF(objects, "")
}

// buildPDF lays out numbered objects (object i+1 is objects[i]) with a cross-reference table
// whose offsets are computed here, and a trailer with the catalog as root plus trailerExtra.
func buildPDF(objects []string, trailerExtra string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n") // a binary comment marks the file as binary
	offsets := make([]int, len(objects))
	for i, obj := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, obj)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off) // each entry is exactly 20 bytes
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, trailerExtra, xref)
	return b.Bytes()
}

// encryptedPDF returns a PDF protected by a user password (standard security handler, RC4 40-bit):
// the U entry does not match the empty password.
func encryptedPDF(tb testing.TB) []byte {
	tb.Helper()
	hex32 := strings.Repeat("ab", 32)
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
	}
	return buildPDF(objects, fmt.Sprintf(" /Encrypt << /Filter /Standard /V 1 /R 2 /Length 40 /O <%s> /U <%s> /P -4 >> /ID [<%s> <%s>]",
		hex32, hex32, strings.Repeat("01", 16), strings.Repeat("01", 16)))
}

// cyclicPDF returns a PDF whose page tree lists itself as its own kid.
func cyclicPDF(tb testing.TB) []byte {
	tb.Helper()
	return buildPDF([]string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [2 0 R] /Count 5 >>",
	}, "")
}

func BenchmarkExtractMarkdown(b *testing.B) {
	var src strings.Builder
	for i, para := range strings.Split(generateProse(1<<20, 2), "\n\n") {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&src, "## Section %d\n\n", i)
		case 1:
			para = "*" + strings.Replace(para, " ", "** ", 1) + "* see [docs](https://example.com/" + fmt.Sprint(i) + ")"
		}
		src.WriteString(para + "\n\n")
	}
	data := []byte(src.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ingest.Extract(ingest.TypeMarkdown, "", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractHTML(b *testing.B) {
	var src strings.Builder
	src.WriteString("<html><head><title>t</title><script>var x = 1;</script></head><body>")
	for i, para := range strings.Split(generateProse(1<<20, 3), "\n\n") {
		fmt.Fprintf(&src, "<h2>Section %d</h2><p>%s <a href=\"/x\">link</a> &amp; <b>more</b></p>\n", i, para)
	}
	src.WriteString("</body></html>")
	data := []byte(src.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ingest.Extract(ingest.TypeHTML, "", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractPDF(b *testing.B) {
	pages := make([]string, 50)
	for i := range pages {
		pages[i] = strings.ReplaceAll(generateProse(2000, uint64(i)), "\n\n", "\n")
	}
	data := MustPDF(b, pages...)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ingest.Extract(ingest.TypePDF, "", data); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzExtract checks that no input panics or escapes the error codes, and that what comes out
// is normalised text.
func FuzzExtract(f *testing.F) {
	f.Add(uint8(0), []byte("# T\n\n*a* [b](c) `d` | x |\n|---|\n| y |\n```\ncode"))
	f.Add(uint8(1), []byte("<p>a<b>b</b></p><script>x</script><pre> p </pre><table><tr><td>1<td>2</table>"))
	f.Add(uint8(2), MustPDF(f, "Hello", "World"))
	f.Add(uint8(3), []byte("plain\r\n\r\n\r\ntext"))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		types := []string{ingest.TypeMarkdown, ingest.TypeHTML, ingest.TypePDF, ""}
		text, err := ingest.Extract(types[int(kind)%len(types)], "", data)
		if err != nil {
			switch ragplane.ErrorCode(err) {
			case ragplane.EINVALID, ragplane.EMALFORMED, ragplane.ETOOLARGE:
				return
			}
			t.Fatalf("unexpected error: %v", err)
		}
		if again, err := ingest.NormalizeText(text); err != nil || again != text {
			t.Fatalf("output is not normalised text: %q (%v)", text, err)
		}
	})
}
