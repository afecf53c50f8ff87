package ingest

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ragplane/ragplane"
)

// NormalizeText puts text into the one form Ragplane stores, hashes and chunks:
//   - a leading byte order mark is dropped;
//   - line ends become "\n" (from "\r\n" and lone "\r");
//   - trailing whitespace is trimmed from every line;
//   - blank lines at the start and end are dropped, and every run of blank lines between two
//     lines becomes a single blank line (one paragraph break);
//   - nothing else changes: leading indentation, inner spacing and Unicode forms are kept
//     (there is no NFC normalisation, so "é" precomposed and decomposed hash differently).
//
// It returns EINVALID if s is not valid UTF-8, contains NUL bytes, or is empty once normalised
// ("document is empty"). NormalizeText is idempotent.
func NormalizeText(s string) (string, error) {
	if err := checkText(s); err != nil {
		return "", err
	}
	s = strings.TrimPrefix(s, "\ufeff")

	var b strings.Builder
	b.Grow(len(s))
	blank := false // a blank line is pending between the last line written and the next
	for i := 0; i < len(s); {
		j := strings.IndexAny(s[i:], "\r\n")
		var line string
		if j < 0 {
			line, i = s[i:], len(s)
		} else {
			line = s[i : i+j]
			i += j + 1
			if s[i-1] == '\r' && i < len(s) && s[i] == '\n' {
				i++
			}
		}
		line = strings.TrimRightFunc(line, unicode.IsSpace)
		if line == "" {
			blank = b.Len() > 0
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
			if blank {
				b.WriteByte('\n')
			}
		}
		blank = false
		b.WriteString(line)
	}
	if b.Len() == 0 {
		return "", ragplane.Errorf(ragplane.EINVALID, "document is empty")
	}
	return b.String(), nil
}

// checkText rejects what NormalizeText cannot store. PostgreSQL text columns refuse NUL, and
// invalid UTF-8 would make byte offsets and token counts meaningless.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return ragplane.Errorf(ragplane.EINVALID, "text is not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return ragplane.Errorf(ragplane.EINVALID, "text contains NUL bytes")
	}
	return nil
}
