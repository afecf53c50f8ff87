// Package sanitize makes model-written Markdown safe to hand to a client that renders it: no
// image, link or raw HTML in an answer makes the client fetch or open a URL on a host the
// tenant did not allow, so a document that injects instructions cannot exfiltrate data through
// the answer (issue 11, item 13).
//
// The rules, applied by one left-to-right scanner (the same for a whole answer and for a stream):
//
//   - Inline images ![alt](url) become their alt text unless url is http(s) on an allowed host.
//     A kept link or image is written anew: its URL percent-encoded where Markdown or HTML could
//     read it otherwise, its title dropped.
//   - Inline links [text](url) become their text unless url is http(s) on an allowed host. Every
//     other destination is dropped: relative, protocol-relative (//host), javascript:, data:,
//     mailto: and so on. The text that replaces a link or image is scanned again together with
//     what follows, so a removal cannot make a new link out of the text on either side of it.
//   - Link reference definitions ([label]: url) with a URL-like destination (a scheme, a backslash
//     or a leading //) on a host not allowed lose their destination, so the references that use
//     them ([text][label], [label], ![alt][label]) stay plain text. Any "]:" followed by such a
//     destination (up to the next space) counts, wherever it is: prose like "see [1]: https://..."
//     loses that URL too. Relative destinations stay (they cannot leave the client's origin).
//     Citation markers [1] are left exactly as written: without a definition they are not links.
//   - Any other "(" right after a "]" that did not open an inline link (an odd or long link text,
//     or text brought together by a removal) has its destination checked the same way.
//   - Autolinks <scheme:...> to hosts not allowed are replaced by their host name (or "link
//     removed"), so the URL and whatever data it carries are gone; e-mail autolinks <a@b.example>
//     keep the address as text.
//   - Every "<" that is not an allowed autolink is escaped as "&lt;": raw HTML (<img>, <a>,
//     <script>, <iframe>, comments) then renders as text, nothing of it is lost, and no later
//     rewrite can assemble a tag. Tags are counted when "<" starts one (a letter, "/", "!" or "?").
//   - Bare URLs (https://... in prose) are left as text: renderers do not fetch them, and where a
//     renderer turns them into links the reader sees the whole URL before following it.
//   - Code spans and blocks are scanned like prose (a renderer would show their content
//     literally): a "<" in code shows as "&lt;", a link in code loses its URL. Safety first.
//
// A construct is recognised within MaxLookahead bytes of its start. One that would need more is
// neutralised instead ("](" becomes "]\(", "]:" becomes "]\:", "<" is escaped), so a stream never
// holds back more than MaxLookahead bytes and a whole answer is cleaned exactly as its stream.
package sanitize

import (
	"html"
	"net/url"
	"slices"
	"strings"
)

// MaxLookahead bounds how far past its first byte a link, image, autolink or definition is looked
// for; it is also the most a Stream holds back.
const MaxLookahead = 2048

// Policy says which link hosts an answer may keep.
type Policy struct {
	// AllowedHosts are host names (lower case, exact match, no port) that links and images may
	// point to over http or https. Empty: none.
	AllowedHosts []string
}

// Report counts what Clean removed or neutralised.
type Report struct {
	Images int `json:"images,omitempty"`
	Links  int `json:"links,omitempty"`
	HTML   int `json:"html,omitempty"`
}

// Total is the number of items removed.
func (r Report) Total() int { return r.Images + r.Links + r.HTML }

func (r *Report) add(o Report) {
	r.Images += o.Images
	r.Links += o.Links
	r.HTML += o.HTML
}

// ParseHosts splits a comma-separated host list (the answer_link_hosts setting) into lower-case
// host names, skipping empty entries.
func ParseHosts(list string) []string {
	var hosts []string
	for _, h := range strings.Split(list, ",") {
		if h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), ".")); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// Clean returns markdown with images, links and raw HTML neutralised by the policy, and what was
// removed.
func (p Policy) Clean(markdown string) (string, Report) {
	sc := scanner{p: p}
	var b strings.Builder
	sc.run(&b, markdown, true)
	return b.String(), sc.rep
}

// Stream cleans a text that arrives in pieces: what its Write and Close calls return, concatenated,
// equals Clean of the whole text. It holds back at most about MaxLookahead bytes.
type Stream struct {
	sc  scanner
	buf string
}

// Stream starts a stream cleaned by the policy.
func (p Policy) Stream() *Stream { return &Stream{sc: scanner{p: p}} }

// Write adds the next piece and returns the cleaned text that can be decided so far.
func (s *Stream) Write(piece string) string {
	s.buf += piece
	var b strings.Builder
	s.buf = s.sc.run(&b, s.buf, false)
	return b.String()
}

// Close returns the rest of the cleaned text.
func (s *Stream) Close() string {
	var b strings.Builder
	s.sc.run(&b, s.buf, true)
	s.buf = ""
	return b.String()
}

// Report is what the stream removed so far.
func (s *Stream) Report() Report { return s.sc.rep }

// outcome is how a look-ahead ended.
type outcome int

const (
	found    outcome = iota
	notFound         // not the construct
	more             // the text ended before it could be decided (stream only)
	tooLong          // undecided within MaxLookahead
)

type scanner struct {
	p       Policy
	rep     Report
	lastOut byte // the last byte written, 0 at the start

	// A removed link or image is replaced by its text, which is then scanned again with what
	// follows it: text made adjacent by the removal is checked like any other.
	splice     bool
	start, end int
	text       string
}

func (sc *scanner) write(b *strings.Builder, s string) {
	if s != "" {
		b.WriteString(s)
		sc.lastOut = s[len(s)-1]
	}
}

// run cleans s into b and returns what it could not decide yet: nothing when final, else the
// text from the first construct that needs more (with removals already made).
func (sc *scanner) run(b *strings.Builder, s string, final bool) string {
	i := 0
	for i < len(s) {
		n, wait := sc.step(b, s, i, final)
		if wait {
			return s[i:]
		}
		if sc.splice {
			sc.splice = false
			s = s[:sc.start] + sc.text + s[sc.end:]
		}
		i = n
	}
	return ""
}

// ranOut is the outcome of needing byte j of s for a construct that started at start.
func ranOut(s string, start, j int, final bool) outcome {
	switch {
	case j >= start+MaxLookahead:
		return tooLong
	case j >= len(s) && !final:
		return more
	}
	return notFound
}

// step handles the construct at s[i] and returns where the next one starts; wait is true when it
// cannot be decided before more text arrives.
func (sc *scanner) step(b *strings.Builder, s string, i int, final bool) (next int, wait bool) {
	switch s[i] {
	case '\\':
		if i+1 >= len(s) {
			if !final {
				return i, true
			}
		} else if isPunct(s[i+1]) {
			sc.write(b, s[i:i+2]) // an escaped character is never syntax
			sc.lastOut = 0        // an escaped "]" closes no link text
			return i + 2, false
		}
	case '!':
		if i+1 >= len(s) && !final {
			return i, true
		}
		if i+1 < len(s) && s[i+1] == '[' {
			return sc.inline(b, s, i+1, final, true)
		}
	case '[':
		return sc.inline(b, s, i, final, false)
	case '(':
		if sc.lastOut == ']' {
			return sc.trailingDestination(b, s, i, final)
		}
	case ':':
		if sc.lastOut == ']' {
			return sc.definition(b, s, i, final)
		}
	case '<':
		return sc.angle(b, s, i, final)
	}
	sc.write(b, s[i:i+1])
	return i + 1, false
}

// inline handles "[" at s[i] (an image's when image, whose "!" is s[i-1]): an inline link or
// image is rewritten; anything else leaves "[" (or "!") as text.
func (sc *scanner) inline(b *strings.Builder, s string, i int, final, image bool) (int, bool) {
	start := i
	if image {
		start = i - 1
	}
	literal := func() (int, bool) {
		sc.write(b, s[start:start+1])
		return start + 1, false
	}
	// The matching "]", brackets nested and escapes skipped.
	depth, j := 0, i
	for {
		if j >= len(s) || j >= start+MaxLookahead {
			if ranOut(s, start, j, final) == more {
				return start, true
			}
			return literal()
		}
		c := s[j]
		if c == '\\' {
			j += 2
			continue
		}
		if c == '[' {
			depth++
		} else if c == ']' {
			depth--
			if depth == 0 {
				break
			}
		}
		j++
	}
	if j+1 >= len(s) || j+1 >= start+MaxLookahead {
		if ranOut(s, start, j+1, final) == more {
			return start, true
		}
		return literal()
	}
	if s[j+1] != '(' {
		return literal()
	}
	end, dest, out := destination(s, start, j+1, final)
	switch out {
	case more:
		return start, true
	case notFound, tooLong:
		return literal() // the text is scanned on; its "](" is neutralised there
	}
	text := s[i+1 : j]
	if u, ok := sc.allowedURL(dest); ok {
		prefix := "["
		if image {
			prefix = "!["
		}
		sc.write(b, prefix)
		sc.sub(b, text)
		sc.write(b, "]("+u+")")
		return end, false
	}
	if image {
		sc.rep.Images++
	} else {
		sc.rep.Links++
	}
	sc.splice, sc.start, sc.end, sc.text = true, start, end, text
	return start, false
}

// sub cleans text nested in a link or image with the same rules.
func (sc *scanner) sub(b *strings.Builder, text string) {
	inner := scanner{p: sc.p, lastOut: sc.lastOut}
	inner.run(b, text, true)
	sc.rep.add(inner.rep)
	sc.lastOut = inner.lastOut
}

// trailingDestination handles "(" right after a written "]" that did not open an inline link
// found above (a long or odd link text, or text made adjacent by a removal): its destination is
// dropped unless allowed.
func (sc *scanner) trailingDestination(b *strings.Builder, s string, i int, final bool) (int, bool) {
	end, dest, out := destination(s, i, i, final)
	switch out {
	case more:
		return i, true
	case found:
		if u, ok := sc.allowedURL(dest); ok {
			sc.write(b, "("+u+")")
		} else {
			sc.rep.Links++
		}
		return end, false
	}
	sc.write(b, `\(`) // no destination a renderer could follow after an escaped "("
	return i + 1, false
}

// destination parses an inline destination "( url "title" )" whose "(" is s[p], for a construct
// that started at start. It returns the index after ")" and the raw url.
func destination(s string, start, p int, final bool) (end int, dest string, out outcome) {
	j := p + 1
	get := func() (byte, outcome) {
		if j >= len(s) || j >= start+MaxLookahead {
			return 0, ranOut(s, start, j, final)
		}
		return s[j], found
	}
	for {
		c, o := get()
		if o != found {
			return 0, "", o
		}
		if !isSpace(c) {
			break
		}
		j++
	}
	from := j
	if c, _ := get(); c == '<' {
		for {
			j++
			c, o := get()
			if o != found {
				return 0, "", o
			}
			if c == '\\' {
				j++
				continue
			}
			if c == '>' || c == '\n' {
				break
			}
		}
		dest = s[from : j+1]
	} else {
		depth := 0
		for ; ; j++ {
			c, o := get()
			if o != found {
				return 0, "", o
			}
			if c == '\\' {
				j++
				continue
			}
			if isSpace(c) || (c == ')' && depth == 0) {
				break
			}
			if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
		}
		dest = s[from:j]
	}
	for ; ; j++ { // an optional title, then ")"
		c, o := get()
		if o != found {
			return 0, "", o
		}
		if c == '\\' {
			j++
			continue
		}
		if c == ')' {
			return j + 1, dest, found
		}
	}
}

// definition handles ":" right after a written "]": "[label]: url" makes every [label] a link to
// url, so a URL-like destination not allowed is dropped (the label stays as text). The
// destination is what follows up to the next space, cleaned on its own, so nothing removed later
// can lengthen it; it is checked wherever "]:" is, not only where a definition may start.
func (sc *scanner) definition(b *strings.Builder, s string, i int, final bool) (int, bool) {
	j, newlines := i+1, 0
	get := func() (byte, outcome) {
		if j >= len(s) || j >= i+MaxLookahead {
			return 0, ranOut(s, i, j, final)
		}
		return s[j], found
	}
	for ; ; j++ {
		c, o := get()
		switch o {
		case more:
			return i, true
		case tooLong:
			sc.write(b, `\:`)
			return i + 1, false
		case notFound:
			sc.write(b, ":")
			return i + 1, false
		}
		if c == '\n' {
			if newlines++; newlines > 1 {
				sc.write(b, ":")
				return i + 1, false
			}
		} else if !isSpace(c) {
			break
		}
	}
	from := j
	for ; ; j++ {
		c, o := get()
		if o == more {
			return i, true
		}
		if o == tooLong {
			sc.write(b, `\:`)
			return i + 1, false
		}
		if o == notFound || isSpace(c) {
			break
		}
	}
	inner := scanner{p: sc.p, lastOut: ' '}
	var dest strings.Builder
	inner.run(&dest, s[from:j], true)
	if (urlLike(s[from:j]) || urlLike(dest.String())) && !sc.allowed(dest.String()) {
		sc.rep.Links++
		return j, false
	}
	sc.rep.add(inner.rep)
	sc.write(b, s[i:from])
	sc.write(b, dest.String())
	return j, false
}

// angle handles "<": an autolink to an allowed host is kept, one to another host replaced by its
// host name, and every other "<" escaped.
func (sc *scanner) angle(b *strings.Builder, s string, i int, final bool) (int, bool) {
	j := i + 1
	escape := func() (int, bool) {
		if j := i + 1; j < len(s) && (isLetter(s[j]) || s[j] == '/' || s[j] == '!' || s[j] == '?') {
			sc.rep.HTML++
		}
		sc.write(b, "&lt;")
		return i + 1, false
	}
	// An autolink is <scheme:...> with a scheme of 2-32 characters and no space, "<" or ">" inside,
	// or <local@domain>.
	for ; ; j++ {
		if j >= len(s) || j >= i+MaxLookahead {
			if ranOut(s, i, j, final) == more {
				return i, true
			}
			return escape()
		}
		c := s[j]
		if c == '>' {
			break
		}
		if c <= ' ' || c == '<' || c == 0x7f {
			return escape()
		}
	}
	inside := s[i+1 : j]
	colon := strings.IndexByte(inside, ':')
	if colon < 0 {
		if !isEmail(inside) {
			return escape()
		}
		// An e-mail autolink opens the reader's mail client, it fetches nothing: the address
		// stays as text, without the link.
		sc.rep.Links++
		sc.write(b, inside)
		return j + 1, false
	}
	if colon < 2 || colon > 32 || !isLetter(inside[0]) || strings.IndexFunc(inside[:colon], func(r rune) bool {
		return !(r < 0x80 && isLetter(byte(r)) || r >= '0' && r <= '9' || r == '+' || r == '.' || r == '-')
	}) >= 0 {
		return escape()
	}
	if u, ok := sc.allowedURL(inside); ok {
		sc.write(b, "<"+u+">")
		return j + 1, false
	}
	sc.rep.Links++
	host := ""
	if u, err := url.Parse(inside); err == nil {
		host = u.Hostname()
	}
	if host == "" || strings.IndexFunc(host, func(r rune) bool {
		return !(r == '.' || r == '-' || r < 0x80 && isLetter(byte(r)) || r >= '0' && r <= '9')
	}) >= 0 {
		host = "link removed"
	}
	sc.write(b, host)
	return j + 1, false
}

// allowed reports whether a raw destination is an http(s) URL on an allowed host.
func (sc *scanner) allowed(raw string) bool {
	_, ok := sc.allowedURL(raw)
	return ok
}

// allowedURL returns an allowed destination rewritten as a URL that is one Markdown destination
// and nothing else (no title, no character that could end it or start HTML), and whether it is
// allowed.
func (sc *scanner) allowedURL(raw string) (string, bool) {
	u := normalise(raw)
	if u == "" || strings.IndexFunc(u, func(r rune) bool { return r <= ' ' || r == '\\' || r == 0x7f }) >= 0 {
		return "", false
	}
	parsed, err := url.Parse(u)
	if err != nil || parsed.User != nil || parsed.Opaque != "" {
		return "", false
	}
	if scheme := strings.ToLower(parsed.Scheme); scheme != "http" && scheme != "https" {
		return "", false
	}
	host := strings.ToLower(strings.TrimSuffix(parsed.Hostname(), "."))
	if host == "" || !slices.Contains(sc.p.AllowedHosts, host) {
		return "", false
	}
	var b strings.Builder
	for _, c := range []byte(parsed.String()) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("<>()[]\"'\\`", c) >= 0 {
			const hex = "0123456789ABCDEF"
			b.Write([]byte{'%', hex[c>>4], hex[c&15]})
		} else {
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// normalise turns a raw destination into the URL a renderer would use: spaces and angle brackets
// trimmed, backslash escapes and HTML entities resolved.
func normalise(raw string) string {
	u := strings.TrimSpace(raw)
	if strings.HasPrefix(u, "<") && strings.HasSuffix(u, ">") && len(u) >= 2 {
		u = u[1 : len(u)-1]
	}
	var b strings.Builder
	for k := 0; k < len(u); k++ {
		if u[k] == '\\' && k+1 < len(u) && isPunct(u[k+1]) {
			k++
		}
		b.WriteByte(u[k])
	}
	return strings.TrimSpace(html.UnescapeString(b.String()))
}

// urlLike reports whether a destination may leave the client's own origin: it names a scheme or a
// network path ("//", or a backslash that browsers read as "/").
func urlLike(raw string) bool {
	u := normalise(raw)
	return strings.ContainsAny(u, ":\\") || strings.HasPrefix(u, "//")
}

// isEmail reports whether s is the address of an e-mail autolink: local@domain of the characters
// CommonMark allows, none of them Markdown syntax that could open a link.
func isEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at < 1 || at == len(s)-1 || strings.Count(s, "@") != 1 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r < 0x80 && isLetter(byte(r)) || r >= '0' && r <= '9' || strings.ContainsRune("@.-_+", r))
	}) < 0
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isPunct(c byte) bool { return strings.IndexByte("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) >= 0 }
