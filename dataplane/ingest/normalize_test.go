package ingest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/ingest"
)

func TestNormalizeText(t *testing.T) {
	tests := []struct {
		name       string
		given      string
		expect     string
		expectCode string
	}{
		{name: "unchanged", given: "one\ntwo", expect: "one\ntwo"},
		{name: "CRLF and CR", given: "one\r\ntwo\rthree\r\n", expect: "one\ntwo\nthree"},
		{name: "trailing spaces", given: "one  \t\ntwo\u00a0\u3000", expect: "one\ntwo"},
		{name: "leading indentation kept", given: "  code\n\tmore", expect: "  code\n\tmore"},
		{name: "one blank line kept", given: "a\n\nb", expect: "a\n\nb"},
		{name: "blank runs collapse", given: "a\n\n\n\n\nb\n \n\t\n\nc", expect: "a\n\nb\n\nc"},
		{name: "blank lines at the ends dropped", given: "\n\n  \na\n\n\n", expect: "a"},
		{name: "BOM dropped", given: "\ufeffhello", expect: "hello"},
		{name: "CRLF blank lines", given: "a\r\n\r\n\r\n\r\nb", expect: "a\n\nb"},
		{name: "Unicode kept", given: "γνώση 印刷 🚀 e\u0301", expect: "γνώση 印刷 🚀 e\u0301"},
		{name: "invalid UTF-8", given: "a\xff", expectCode: ragplane.EINVALID},
		{name: "NUL byte", given: "a\x00b", expectCode: ragplane.EINVALID},
		{name: "empty", given: "", expectCode: ragplane.EINVALID},
		{name: "blank", given: " \r\n\t\n ", expectCode: ragplane.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ingest.NormalizeText(tt.given)
			if code := ragplane.ErrorCode(err); code != tt.expectCode {
				t.Fatalf("error code %q (%v), expect %q", code, err, tt.expectCode)
			}
			if got != tt.expect {
				t.Errorf("NormalizeText(%q) = %q, expect %q", tt.given, got, tt.expect)
			}
			if err == nil {
				again, err := ingest.NormalizeText(got)
				if err != nil || again != got {
					t.Errorf("not idempotent: %q -> %q, %v", got, again, err)
				}
			}
		})
	}
}

func TestNormalizeTextErrorSaysWhich(t *testing.T) {
	for given, expect := range map[string]string{"a\xff": "UTF-8", "a\x00": "NUL", " ": "empty"} {
		_, err := ingest.NormalizeText(given)
		if msg := ragplane.ErrorMessage(err); !strings.Contains(msg, expect) {
			t.Errorf("NormalizeText(%q) message %q does not mention %q", given, msg, expect)
		}
	}
}

func TestContentHash(t *testing.T) {
	a, err := ingest.NormalizeText("Hello  \r\nworld\r\n\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ingest.NormalizeText("Hello\nworld")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ingest.ContentHash(a), ingest.ContentHash(b)) {
		t.Error("texts that normalise alike hash differently")
	}
	if bytes.Equal(ingest.ContentHash("Hello world"), ingest.ContentHash("Hello  world")) {
		t.Error("different texts hash alike")
	}
	want := sha256.Sum256([]byte("Hello\nworld"))
	if got := ingest.ContentHash(b); hex.EncodeToString(got) != hex.EncodeToString(want[:]) {
		t.Errorf("ContentHash = %x, expect SHA-256 %x", got, want)
	}
}

func BenchmarkNormalizeText(b *testing.B) {
	text := strings.ReplaceAll(generateProse(1<<20, 1), "\n", "  \r\n")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := ingest.NormalizeText(text); err != nil {
			b.Fatal(err)
		}
	}
}
