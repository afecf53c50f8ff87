package ingest

import (
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/ragplane/ragplane"
)

// Media types Extract reads.
const (
	TypePlain    = "text/plain"
	TypeMarkdown = "text/markdown"
	TypeHTML     = "text/html"
	TypePDF      = "application/pdf"
)

// MaxTextBytes caps the text Extract returns. A request body is already capped by the tenant's
// max_request_bytes, but a compressed PDF can expand far beyond its size; the text is stored in
// one row and chunked in memory, so anything bigger should be split by the client.
const MaxTextBytes = 64 << 20

const supportedTypes = TypePlain + ", " + TypeMarkdown + ", " + TypeHTML + ", " + TypePDF

// typeAliases maps other names in use for the supported types.
var typeAliases = map[string]string{
	"text/x-markdown":       TypeMarkdown,
	"application/xhtml+xml": TypeHTML,
	"application/x-pdf":     TypePDF,
}

// extensionTypes is consulted when no media type is given; the extension beats content sniffing
// because Markdown looks like plain text to http.DetectContentType.
var extensionTypes = map[string]string{
	".txt":      TypePlain,
	".md":       TypeMarkdown,
	".markdown": TypeMarkdown,
	".html":     TypeHTML,
	".htm":      TypeHTML,
	".pdf":      TypePDF,
}

// Extract returns the text of a document, normalised by NormalizeText and so ready for
// ContentHash and Chunk.
//
// mediaType is the client's Content-Type and may carry parameters; a charset other than UTF-8 or
// US-ASCII is refused since there is no transcoding. When it is empty or
// application/octet-stream, the type comes from filename's extension (.txt .md .markdown .html
// .htm .pdf) and failing that from http.DetectContentType.
//
//   - text/plain is kept as is.
//   - text/markdown keeps the text and drops syntax that adds no meaning: heading marks, emphasis
//     markers, fences (the code stays), link targets (the link text stays), images (the alt text
//     stays), block quote marks, rules and reference definitions; table rows become lines of
//     "header: cell; header: cell".
//   - text/html drops script, style, noscript, template and head, turns block elements into
//     paragraph breaks, list items and table rows into lines, and decodes entities.
//   - application/pdf gives the text of each page, pages separated by a blank line. Text is only
//     what the PDF's fonts map to Unicode: scanned pages have none (no OCR).
//
// Errors: EINVALID for an unsupported type (the message names it and the supported list), an
// unsupported charset, invalid UTF-8 or NUL in a text format, HTML nested over 512 elements deep,
// an encrypted PDF or no text at all;
// EMALFORMED for a PDF that cannot be parsed; ETOOLARGE for text over MaxTextBytes.
func Extract(mediaType, filename string, data []byte) (string, error) {
	typ, err := resolveType(mediaType, filename, data)
	if err != nil {
		return "", err
	}
	var text string
	switch typ {
	case TypePDF:
		if text, err = pdfText(data); err != nil {
			return "", err
		}
		if strings.TrimSpace(text) == "" {
			return "", ragplane.Errorf(ragplane.EINVALID, "PDF has no extractable text (scanned pages would need OCR)")
		}
	default:
		text = string(data)
		if err := checkText(text); err != nil {
			return "", err
		}
		switch typ {
		case TypeMarkdown:
			text = markdownText(text)
		case TypeHTML:
			if text, err = htmlText(text); err != nil {
				return "", err
			}
		}
	}
	if len(text) > MaxTextBytes {
		return "", tooLarge()
	}
	return NormalizeText(text)
}

func tooLarge() error {
	return ragplane.Errorf(ragplane.ETOOLARGE, "document text is over %d MiB", MaxTextBytes>>20)
}

// resolveType returns one of the Type* constants for a declared media type, or a sniffed one.
func resolveType(mediaType, filename string, data []byte) (string, error) {
	sniffed := false
	if mt := strings.TrimSpace(mediaType); mt == "" || strings.HasPrefix(strings.ToLower(mt), "application/octet-stream") {
		if t, ok := extensionTypes[strings.ToLower(path.Ext(filename))]; ok {
			return t, nil
		}
		mediaType, sniffed = http.DetectContentType(data), true
	}
	typ, params, err := mime.ParseMediaType(mediaType)
	if err != nil {
		return "", ragplane.Errorf(ragplane.EINVALID, "media type %q cannot be parsed; supported: %s", mediaType, supportedTypes)
	}
	if t, ok := typeAliases[typ]; ok {
		typ = t
	}
	switch typ {
	case TypePlain, TypeMarkdown, TypeHTML, TypePDF:
	default:
		if sniffed {
			return "", ragplane.Errorf(ragplane.EINVALID, "unsupported media type %q (detected from the content of %q); supported: %s", typ, filename, supportedTypes)
		}
		return "", ragplane.Errorf(ragplane.EINVALID, "unsupported media type %q; supported: %s", typ, supportedTypes)
	}
	if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "utf8" && cs != "us-ascii" && typ != TypePDF {
		return "", ragplane.Errorf(ragplane.EINVALID, "unsupported charset %q; send the text as UTF-8", cs)
	}
	return typ, nil
}
