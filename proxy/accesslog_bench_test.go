package proxy

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkAccessLog is the cost the access log adds to a request: one line through the JSON
// handler the binary uses, to io.Discard (the encoding alone) and to a file (with the write
// system call a line costs on stderr).
func BenchmarkAccessLog(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for _, sink := range []struct {
		name string
		w    io.Writer
	}{{"discard", io.Discard}, {"file", f}} {
		b.Run(sink.name, func(b *testing.B) {
			s := &Server{log: slog.New(slog.NewJSONHandler(sink.w, nil)).With("component", "proxy")}
			r := httptest.NewRequest("GET", "/v1/search?q=x", nil)
			r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			rec := &statusRecorder{ResponseWriter: httptest.NewRecorder(), code: 200, bytes: 1234}
			start := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				s.logAccess(r, rec, "acme_corp", "01JDZ8K3Q4R5S6T7V8W9X0Y1Z2", start)
			}
		})
	}
}
