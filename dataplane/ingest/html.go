package ingest

import (
	"fmt"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/ragplane/ragplane"
)

// htmlText returns the visible text of an HTML document. It walks the tree without recursion.
//
// html.Parse follows the HTML5 algorithm, so any byte string parses, with one exception: it gives
// up on more than 512 open elements. That is EINVALID rather than a guess at the text.
func htmlText(src string) (string, error) {
	doc, err := html.Parse(strings.NewReader(src))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ragplane.Errorf(ragplane.EINVALID, "HTML cannot be parsed: elements are nested too deeply"), err)
	}
	var w textWriter
	w.b.Grow(len(src) / 2)
	n := doc
	for n != nil {
		// Enter n.
		descend := true
		switch n.Type {
		case html.TextNode:
			w.text(n.Data, w.pre > 0)
		case html.ElementNode:
			switch n.DataAtom {
			case atom.Script, atom.Style, atom.Noscript, atom.Template, atom.Head:
				descend = false
			default:
				w.open(n)
			}
		}
		if descend && n.FirstChild != nil {
			n = n.FirstChild
			continue
		}
		// Leave n, and every ancestor whose last child we just left.
		for n != nil {
			if n.Type == html.ElementNode && descend {
				w.close(n)
			}
			descend = true
			if n.NextSibling != nil {
				n = n.NextSibling
				break
			}
			n = n.Parent
		}
	}
	return w.b.String(), nil
}

// Breaks between pieces of text, weakest first; the strongest pending one wins.
const (
	breakNone = iota
	breakSpace
	breakLine
	breakParagraph
)

// blockAtoms start and end a paragraph; lineAtoms a line.
var (
	blockAtoms = map[atom.Atom]bool{
		atom.Address: true, atom.Article: true, atom.Aside: true, atom.Blockquote: true, atom.Body: true,
		atom.Caption: true, atom.Details: true, atom.Dialog: true, atom.Dl: true, atom.Div: true,
		atom.Fieldset: true, atom.Figcaption: true, atom.Figure: true, atom.Footer: true, atom.Form: true,
		atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true, atom.H5: true, atom.H6: true,
		atom.Header: true, atom.Hgroup: true, atom.Hr: true, atom.Main: true, atom.Nav: true, atom.Ol: true,
		atom.P: true, atom.Pre: true, atom.Section: true, atom.Summary: true, atom.Table: true, atom.Ul: true,
		atom.Listing: true, atom.Textarea: true,
	}
	lineAtoms = map[atom.Atom]bool{
		atom.Li: true, atom.Tr: true, atom.Dt: true, atom.Dd: true, atom.Option: true, atom.Legend: true,
	}
)

// textWriter collapses HTML whitespace and writes only the strongest break between two texts.
type textWriter struct {
	b       strings.Builder
	pending int    // a break* constant
	sep     string // written instead of a space break, between table cells
	pre     int    // depth of whitespace-preserving elements
}

func (w *textWriter) open(n *html.Node) {
	switch {
	case n.DataAtom == atom.Br:
		w.brk(breakLine)
	case n.DataAtom == atom.Td || n.DataAtom == atom.Th:
		for s := n.PrevSibling; s != nil; s = s.PrevSibling {
			if s.Type == html.ElementNode && (s.DataAtom == atom.Td || s.DataAtom == atom.Th) {
				w.sep = "; "
				break
			}
		}
	case blockAtoms[n.DataAtom]:
		w.brk(breakParagraph)
	case lineAtoms[n.DataAtom]:
		w.brk(breakLine)
	}
	if n.DataAtom == atom.Pre || n.DataAtom == atom.Textarea || n.DataAtom == atom.Listing {
		w.pre++
	}
}

func (w *textWriter) close(n *html.Node) {
	switch {
	case blockAtoms[n.DataAtom]:
		w.brk(breakParagraph)
	case lineAtoms[n.DataAtom]:
		w.brk(breakLine)
	}
	if n.DataAtom == atom.Pre || n.DataAtom == atom.Textarea || n.DataAtom == atom.Listing {
		w.pre--
	}
}

func (w *textWriter) brk(level int) { w.pending = max(w.pending, level) }

// flush writes the pending break, if any text precedes it.
func (w *textWriter) flush() {
	if w.b.Len() > 0 {
		switch {
		case w.pending == breakParagraph:
			w.b.WriteString("\n\n")
		case w.pending == breakLine:
			w.b.WriteByte('\n')
		case w.sep != "":
			w.b.WriteString(w.sep)
		case w.pending == breakSpace:
			w.b.WriteByte(' ')
		}
	}
	w.pending, w.sep = breakNone, ""
}

// text writes a text node; outside pre, runs of whitespace (and no-break spaces) become one space.
func (w *textWriter) text(s string, pre bool) {
	if pre {
		if s != "" {
			w.flush()
			w.b.WriteString(s)
		}
		return
	}
	for s != "" {
		i := strings.IndexFunc(s, isHTMLSpace)
		if i != 0 {
			if i < 0 {
				i = len(s)
			}
			w.flush()
			w.b.WriteString(s[:i])
			s = s[i:]
			continue
		}
		w.brk(breakSpace)
		j := strings.IndexFunc(s, func(r rune) bool { return !isHTMLSpace(r) })
		if j < 0 {
			break
		}
		s = s[j:]
	}
}

func isHTMLSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\f', '\r', '\u00a0':
		return true
	}
	return false
}
