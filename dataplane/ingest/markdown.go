package ingest

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// markdownText strips the Markdown syntax that adds no meaning and keeps all the text. It works
// line by line on CommonMark/GFM's common subset rather than building a full syntax tree: the
// output is for embedding and reading, and a construct it does not recognise stays as written.
func markdownText(src string) string {
	src = strings.ReplaceAll(strings.ReplaceAll(src, "\r\n", "\n"), "\r", "\n")
	lines := strings.Split(src, "\n")
	out := make([]string, 0, len(lines))
	var fence string // the opening fence while inside a fenced code block
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		body, indent := trimIndent(line)
		if fence != "" {
			if indent < 4 && strings.HasPrefix(body, fence) && strings.Trim(body, fence[:1]+" \t") == "" {
				fence = ""
				out = append(out, "")
				continue
			}
			out = append(out, line) // code is kept verbatim
			continue
		}
		if indent >= 4 { // indented code, or a list item's continuation: keep the layout
			out = append(out, strings.Repeat(" ", indent)+mdInline(body))
			continue
		}
		switch {
		case isFence(body):
			fence = body[:fenceLen(body)]
			out = append(out, "")
			continue
		case isRule(body):
			out = append(out, "")
			continue
		case isSetextUnderline(body) && i > 0 && strings.TrimSpace(lines[i-1]) != "":
			out = append(out, "")
			continue
		case isLinkDefinition(body):
			continue
		case strings.Contains(body, "|") && i+1 < len(lines):
			if header := tableCells(body); len(header) > 0 && isDelimiterRow(lines[i+1], len(header)) {
				var rows []string
				i += 2
				for ; i < len(lines) && strings.Contains(lines[i], "|") && strings.TrimSpace(lines[i]) != ""; i++ {
					rows = append(rows, tableRow(header, tableCells(strings.TrimSpace(lines[i]))))
				}
				i-- // the loop's i++ moves to the line after the table
				if len(rows) == 0 {
					rows = append(rows, joinCells(header))
				}
				out = append(out, rows...)
				continue
			}
		}
		out = append(out, mdBlock(body))
	}
	return strings.Join(out, "\n")
}

// mdBlock strips a line's block markers (quotes, headings, bullets) and its inline syntax.
func mdBlock(s string) string {
	for { // block quotes, possibly nested: "> > text"
		t := strings.TrimLeft(s, " ")
		if !strings.HasPrefix(t, ">") {
			break
		}
		s = strings.TrimPrefix(t[1:], " ")
	}
	if h := strings.TrimLeft(s, "#"); len(s)-len(h) >= 1 && len(s)-len(h) <= 6 && (h == "" || h[0] == ' ' || h[0] == '\t') {
		h = strings.TrimSpace(h)
		if t := strings.TrimRight(h, "#"); t != h && (t == "" || strings.HasSuffix(t, " ")) {
			h = strings.TrimSpace(t) // closing sequence: "## Title ##"
		}
		return mdInline(h)
	}
	if len(s) >= 2 && (s[0] == '*' || s[0] == '+' || s[0] == '-') && (s[1] == ' ' || s[1] == '\t') {
		return "- " + mdInline(strings.TrimLeft(s[2:], " \t"))
	}
	return mdInline(s)
}

// mdInline drops inline syntax: backslash escapes, code span backticks, emphasis and
// strikethrough markers that come in pairs, link and image targets, autolink brackets.
func mdInline(s string) string {
	if !strings.ContainsAny(s, "\\`*_~[]<") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && isASCIIPunct(s[i+1]):
			b.WriteByte(s[i+1])
			i += 2
			continue
		case c == '`':
			n := runLen(s[i:], '`')
			if j := closingRun(s, i+n, "`", n); j >= 0 {
				code := s[i+n : j]
				if len(code) >= 2 && code[0] == ' ' && code[len(code)-1] == ' ' && strings.Trim(code, " ") != "" {
					code = code[1 : len(code)-1]
				}
				b.WriteString(code)
				i = j + n
				continue
			}
			b.WriteString(s[i : i+n])
			i += n
			continue
		case c == '!' && i+1 < len(s) && s[i+1] == '[':
			if text, end, ok := link(s, i+1); ok {
				b.WriteString(mdInline(text))
				i = end
				continue
			}
		case c == '[':
			if text, end, ok := link(s, i); ok {
				b.WriteString(mdInline(text))
				i = end
				continue
			}
		case c == '<':
			if j := strings.IndexByte(s[i:], '>'); j > 1 {
				inner := s[i+1 : i+j]
				if !strings.ContainsAny(inner, " <") && (strings.Contains(inner, "://") || strings.HasPrefix(inner, "mailto:") || strings.Contains(inner, "@")) {
					b.WriteString(inner)
					i += j + 1
					continue
				}
			}
		case c == '*' || c == '_' || c == '~':
			n := runLen(s[i:], c)
			if end, ok := emphasis(s, i, n); ok {
				b.WriteString(mdInline(s[i+n : end]))
				i = end + n
				continue
			}
			b.WriteString(s[i : i+n])
			i += n
			continue
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

// maxSpan bounds how far a closing delimiter is searched for, keeping mdInline linear-ish on
// adversarial input; real emphasis and link texts are far shorter.
const maxSpan = 1024

// emphasis reports whether the delimiter run s[i:i+n] opens a span and where its closing run
// starts. The run must be left-flanking, the closer an equal right-flanking run; "_" must not
// touch letters outside the span (snake_case stays), "~" needs two (strikethrough).
func emphasis(s string, i, n int) (int, bool) {
	c := s[i]
	if n > 3 || (c == '~' && n != 2) || i+n >= len(s) {
		return 0, false
	}
	after, _ := utf8.DecodeRuneInString(s[i+n:])
	before, _ := utf8.DecodeLastRuneInString(s[:i])
	if unicode.IsSpace(after) || (c == '_' && i > 0 && isWordRune(before)) {
		return 0, false
	}
	limit := min(len(s), i+n+maxSpan)
	for j := i + n + 1; j < limit; {
		k := strings.IndexByte(s[j:limit], c)
		if k < 0 {
			return 0, false
		}
		j += k
		m := runLen(s[j:], c)
		prev, _ := utf8.DecodeLastRuneInString(s[:j])
		next, _ := utf8.DecodeRuneInString(s[j+m:])
		if m == n && !unicode.IsSpace(prev) && (c != '_' || j+m == len(s) || !isWordRune(next)) {
			return j, true
		}
		j += m
	}
	return 0, false
}

// link parses "[text](target)", "[text][ref]" or "[text][]" at s[i] == '[' and returns the text
// and the end of the whole construct. A bare "[text]" is left alone: without the reference
// definitions it cannot be told apart from literal brackets.
func link(s string, i int) (text string, end int, ok bool) {
	depth := 0
	limit := min(len(s), i+maxSpan)
	j := i
	for ; j < limit; j++ {
		switch s[j] {
		case '\\':
			j++
			continue
		case '[':
			depth++
		case ']':
			depth--
		}
		if depth == 0 {
			break
		}
	}
	if depth != 0 || j+1 >= len(s) {
		return "", 0, false
	}
	text = s[i+1 : j]
	opener, closer := s[j+1], byte(')')
	switch opener {
	case '(':
	case '[':
		closer = ']'
	default:
		return "", 0, false
	}
	depth = 0
	limit = min(len(s), j+1+maxSpan)
	for k := j + 1; k < limit; k++ {
		switch s[k] {
		case '\\':
			k++
		case opener:
			depth++
		case closer:
			if depth--; depth == 0 {
				return text, k + 1, true
			}
		}
	}
	return "", 0, false
}

// Tables (GFM): a header row, a delimiter row of dashes, body rows.

func tableCells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimPrefix(row, "|")
	if strings.HasSuffix(row, "|") && !strings.HasSuffix(row, `\|`) {
		row = row[:len(row)-1]
	}
	var cells []string
	start := 0
	for i := 0; i < len(row); i++ {
		switch row[i] {
		case '\\':
			i++
		case '|':
			cells = append(cells, strings.TrimSpace(row[start:i]))
			start = i + 1
		}
	}
	return append(cells, strings.TrimSpace(row[start:]))
}

func isDelimiterRow(line string, columns int) bool {
	if !strings.Contains(line, "-") {
		return false
	}
	cells := tableCells(line)
	if len(cells) != columns {
		return false
	}
	for _, c := range cells {
		c = strings.TrimSuffix(strings.TrimPrefix(c, ":"), ":")
		if c == "" || strings.Trim(c, "-") != "" {
			return false
		}
	}
	return true
}

// tableRow renders a body row as "header: cell; header: cell", so that every line of a table
// still says what its values are once the table is cut into chunks.
func tableRow(header, cells []string) string {
	parts := make([]string, 0, len(cells))
	for i, c := range cells {
		c = mdInline(strings.ReplaceAll(c, `\|`, "|"))
		if c == "" {
			continue
		}
		if i < len(header) && header[i] != "" {
			c = mdInline(header[i]) + ": " + c
		}
		parts = append(parts, c)
	}
	return strings.Join(parts, "; ")
}

func joinCells(cells []string) string {
	parts := make([]string, 0, len(cells))
	for _, c := range cells {
		if c = mdInline(strings.ReplaceAll(c, `\|`, "|")); c != "" {
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, "; ")
}

// Line shapes.

// trimIndent returns the line without leading blanks and its indentation in columns (tab = 4).
func trimIndent(line string) (string, int) {
	indent := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case ' ':
			indent++
		case '\t':
			indent += 4 - indent%4
		default:
			return line[i:], indent
		}
	}
	return "", indent
}

func isFence(s string) bool {
	n := fenceLen(s)
	return n >= 3 && !(s[0] == '`' && strings.Contains(s[n:], "`"))
}

func fenceLen(s string) int {
	if s == "" || (s[0] != '`' && s[0] != '~') {
		return 0
	}
	return runLen(s, s[0])
}

// isRule reports a thematic break: three or more of the same "-", "*" or "_", spaces allowed.
func isRule(s string) bool {
	s = strings.TrimSpace(s)
	if len(s) < 3 || (s[0] != '-' && s[0] != '*' && s[0] != '_') {
		return false
	}
	t := strings.ReplaceAll(strings.ReplaceAll(s, " ", ""), "\t", "")
	return len(t) >= 3 && strings.Trim(t, s[:1]) == ""
}

func isSetextUnderline(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && (strings.Trim(s, "=") == "" || strings.Trim(s, "-") == "")
}

// isLinkDefinition reports "[label]: target".
func isLinkDefinition(s string) bool {
	if !strings.HasPrefix(s, "[") || strings.HasPrefix(s, "[^") {
		return false
	}
	j := strings.Index(s, "]:")
	return j > 1 && !strings.Contains(s[1:j], "]") && strings.TrimSpace(s[j+2:]) != ""
}

func runLen(s string, c byte) int {
	n := 0
	for n < len(s) && s[n] == c {
		n++
	}
	return n
}

// closingRun returns the start of the next run of exactly n copies of delim at or after from,
// within maxSpan bytes, or -1.
func closingRun(s string, from int, delim string, n int) int {
	limit := min(len(s), from+maxSpan)
	for j := from; j < limit; {
		k := strings.Index(s[j:limit], delim)
		if k < 0 {
			return -1
		}
		j += k
		m := runLen(s[j:], delim[0])
		if m == n {
			return j
		}
		j += m
	}
	return -1
}

func isASCIIPunct(c byte) bool {
	return c >= '!' && c <= '/' || c >= ':' && c <= '@' || c >= '[' && c <= '`' || c >= '{' && c <= '~'
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
