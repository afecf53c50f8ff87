package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/ledongthuc/pdf"

	"github.com/ragplane/ragplane"
)

// PDF page trees are walked here rather than by the library's Reader.Page, which follows /Kids
// and /Parent without bounds and so loops forever on a crafted file whose tree points back at
// itself. Real trees are a few levels deep and well under a million pages.
const (
	maxPageTreeDepth = 64
	maxPageNodes     = 1 << 20
)

// pdfText returns the text of each page of a PDF, pages separated by a blank line.
//
// Encrypted PDFs are refused even when they open without a password (owner-password-only
// files): the library's decryption is weak, and garbled text would be stored without complaint.
// The library reports parse errors by panicking; any panic here is a malformed PDF.
func pdfText(data []byte) (text string, err error) {
	defer func() {
		if r := recover(); r != nil {
			text, err = "", malformedPDF(fmt.Errorf("%v", r))
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		if errors.Is(err, pdf.ErrInvalidPassword) || strings.Contains(err.Error(), "encrypt") {
			return "", encryptedPDF()
		}
		return "", malformedPDF(err)
	}
	if !r.Trailer().Key("Encrypt").IsNull() {
		return "", encryptedPDF()
	}

	var pages []pdf.Page
	visited := 0
	if err := collectPages(r.Trailer().Key("Root").Key("Pages"), 0, &visited, &pages); err != nil {
		return "", err
	}
	if len(pages) == 0 {
		return "", malformedPDF(errors.New("no pages"))
	}
	var b strings.Builder
	for _, p := range pages {
		// Resources are looked up through /Parent, again without a bound in the library.
		depth := 0
		for v := p.V; !v.IsNull(); v = v.Key("Parent") {
			if depth++; depth > maxPageTreeDepth {
				return "", malformedPDF(errors.New("page tree /Parent chain too deep or cyclic"))
			}
		}
		t, err := p.GetPlainText(nil) // nil: resolve fonts per page, names are only page-local
		if err != nil {
			return "", malformedPDF(err)
		}
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(t)
		if b.Len() > MaxTextBytes {
			return "", tooLarge()
		}
	}
	return sanitizePDFText(b.String()), nil
}

// collectPages appends the leaves of a page tree in document order. visited counts every node,
// since a tree whose /Kids repeat the same node grows exponentially without any leaves.
func collectPages(node pdf.Value, depth int, visited *int, pages *[]pdf.Page) error {
	if *visited++; depth > maxPageTreeDepth || *visited > maxPageNodes {
		return malformedPDF(errors.New("page tree too deep or too large"))
	}
	switch node.Key("Type").Name() {
	case "Page":
		*pages = append(*pages, pdf.Page{V: node})
	case "Pages":
		kids := node.Key("Kids")
		for i := 0; i < kids.Len(); i++ {
			if err := collectPages(kids.Index(i), depth+1, visited, pages); err != nil {
				return err
			}
		}
	}
	return nil
}

// sanitizePDFText makes the library's output storable: fonts without a Unicode map yield raw
// codes, which may be invalid UTF-8 or control characters.
func sanitizePDFText(s string) string {
	s = strings.ToValidUTF8(s, "\ufffd")
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		if r == '\r' || r == '\f' || r == '\v' {
			return '\n'
		}
		return -1
	}, s)
}

func encryptedPDF() error {
	return ragplane.Errorf(ragplane.EINVALID, "PDF is encrypted; upload a copy without a password or restrictions")
}

// malformedPDF keeps the parser's reason in the chain for logs, with a message safe for clients.
func malformedPDF(cause error) error {
	return fmt.Errorf("%w: %v", ragplane.Errorf(ragplane.EMALFORMED, "PDF cannot be read"), cause)
}
