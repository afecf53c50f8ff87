package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/e2etest"
)

// tenantStack is a control plane, a worker and a proxy, and the CLI environment of one tenant
// that calls them through the proxy with a token.
func tenantStack(t *testing.T, tenant string) (*e2etest.Stack, env) {
	t.Helper()
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant(tenant, "pro", nil)
	proxyURL := st.StartProxy(t)
	return st, env{"RAGPLANE_ADMIN_URL": st.AdminURL, "RAGPLANE_ADMIN_TOKEN": e2etest.AdminToken,
		"RAGPLANE_API_URL": proxyURL, "RAGPLANE_TOKEN": st.Token(tenant)}
}

// writeFiles makes a directory of files (name -> content) and returns its path.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCLIIngestAndDocuments(t *testing.T) {
	const tenant = "cli_docs"
	st, user := tenantStack(t, tenant)
	dir := writeFiles(t, map[string]string{
		"retention.md":      "# Retention\n\nRecords are kept for seven years, then destroyed.",
		"backups.txt":       "Backups are encrypted with AES-256 and copied to a second region every night.",
		"guide/access.md":   "# Access\n\nAccess reviews happen every quarter and are signed by the CISO.",
		".hidden/secret.md": "not for upload",
	})

	var report ingestReport
	t.Run("ingest a directory -o json", func(t *testing.T) {
		out := MustRunCLI(t, user, "ingest", dir, "-o", "json")
		if err := json.Unmarshal([]byte(out), &report); err != nil {
			t.Fatalf("ingest -o json: %v\n%s", err, out)
		}
		if report.Ingested != 3 || report.Failed != 0 || len(report.Files) != 3 || report.Chunks < 3 {
			t.Fatalf("report %+v", report)
		}
		for i, want := range []string{"backups.txt", "guide/access.md", "retention.md"} {
			f := report.Files[i]
			if f.Source != want || f.DocumentID == "" || f.Chunks < 1 || f.Error != nil || f.File != filepath.Join(dir, filepath.FromSlash(want)) {
				t.Fatalf("file %d: %+v, want source %s with a document id", i, f, want)
			}
		}
	})

	t.Run("documents list, get: the source is the file's name", func(t *testing.T) {
		var docs []ragplane.Document
		if err := json.Unmarshal([]byte(MustRunCLI(t, user, "documents", "list", "-o", "json")), &docs); err != nil || len(docs) != 3 {
			t.Fatalf("documents list: %v %+v", err, docs)
		}
		for _, d := range docs {
			if strings.Contains(d.Source, dir) || strings.HasPrefix(d.Source, "/") {
				t.Fatalf("document %s has the local path as its source: %q", d.ID, d.Source)
			}
		}
		table := MustRunCLI(t, user, "documents", "list")
		for _, f := range report.Files {
			if r := row(t, table, f.DocumentID); r[2] != f.Source && r[1] != f.Source {
				t.Fatalf("row %v, want source %s", r, f.Source)
			}
		}
		var got ragplane.Document
		if err := json.Unmarshal([]byte(MustRunCLI(t, user, "documents", "get", report.Files[2].DocumentID, "-o", "yaml", "-o", "json")), &got); err != nil {
			t.Fatal(err)
		}
		if got.Source != "retention.md" || !strings.Contains(got.Content, "seven years") {
			t.Fatalf("documents get: %+v", got)
		}
		mustSameData(t, MustRunCLI(t, user, "documents", "get", got.ID, "-o", "json"), MustRunCLI(t, user, "documents", "get", got.ID, "-o", "yaml"))
		if out := MustRunCLI(t, user, "documents", "get", got.ID, "--content"); !strings.Contains(out, "seven years") {
			t.Fatalf("--content:\n%s", out)
		}
		// Paging: one per page, --all follows the cursor.
		if err := json.Unmarshal([]byte(MustRunCLI(t, user, "documents", "list", "--limit", "1", "--all", "-o", "json")), &docs); err != nil || len(docs) != 3 {
			t.Fatalf("--limit 1 --all: %v, %d documents", err, len(docs))
		}
		if err := json.Unmarshal([]byte(MustRunCLI(t, user, "documents", "list", "--limit", "1", "-o", "json")), &docs); err != nil || len(docs) != 1 {
			t.Fatalf("--limit 1: %v, %d documents", err, len(docs))
		}
	})

	t.Run("ingest again: duplicates", func(t *testing.T) {
		out := MustRunCLI(t, user, "ingest", filepath.Join(dir, "retention.md"))
		if !strings.Contains(out, "[1/1] retention.md") || !strings.Contains(out, "(already stored)") || !strings.Contains(out, report.Files[2].DocumentID) {
			t.Fatalf("re-ingest printed:\n%s", out)
		}
	})

	t.Run("continue on error", func(t *testing.T) {
		bad := writeFiles(t, map[string]string{
			"a-good.md":  "Incidents are reported to the security team within one hour.",
			"b-empty.md": "",
			"c-good.md":  "Vendors are assessed before contract signature and every year after.",
		})
		// Without the flag the first failure stops the upload.
		out, err := runCLI(t, user, "ingest", bad, "-o", "json")
		if exitCode(err) != exitUsage {
			t.Fatalf("exit %d (%v), want %d for the empty file (422)", exitCode(err), err, exitUsage)
		}
		var r ingestReport
		if jerr := json.Unmarshal([]byte(out), &r); jerr != nil || len(r.Files) != 2 || r.Ingested != 1 || r.Failed != 1 {
			t.Fatalf("stopped report: %v %+v", jerr, r)
		}
		out, err = runCLI(t, user, "ingest", bad, "-o", "json", "--continue-on-error")
		if err == nil || exitCode(err) != exitUsage || !strings.Contains(err.Error(), "1 of 3 files failed") {
			t.Fatalf("--continue-on-error: %v (exit %d), want a failure naming 1 of 3", err, exitCode(err))
		}
		if jerr := json.Unmarshal([]byte(out), &r); jerr != nil || len(r.Files) != 3 || r.Ingested != 2 || r.Failed != 1 {
			t.Fatalf("report: %v %+v", jerr, r)
		}
		if f := r.Files[1]; f.Source != "b-empty.md" || f.Error == nil || f.Error.Status != http.StatusUnprocessableEntity || f.DocumentID != "" {
			t.Fatalf("the bad file's result %+v", f)
		}
		if r.Files[2].DocumentID == "" || r.Files[2].Error != nil {
			t.Fatalf("the file after the bad one was not ingested: %+v", r.Files[2])
		}
	})

	t.Run("documents delete", func(t *testing.T) {
		id := report.Files[0].DocumentID
		out := MustRunCLI(t, user, "documents", "delete", id)
		if !strings.Contains(out, "deleted document "+id) {
			t.Fatalf("delete printed %q", out)
		}
		_, err := runCLI(t, user, "documents", "get", id)
		if exitCode(err) != exitNotFound {
			t.Fatalf("get after delete: %v (exit %d), want not found", err, exitCode(err))
		}
		_, err = runCLI(t, user, "documents", "delete", id)
		mustAPIError(t, err, http.StatusNotFound, ragplane.ENOTFOUND)
	})

	t.Run("documents through a worker with --worker", func(t *testing.T) {
		op := env{"RAGPLANE_WORKER_URL": st.WorkerURL, "RAGPLANE_INTERNAL_KEY": e2etest.InternalKey}
		var docs []ragplane.Document
		if err := json.Unmarshal([]byte(MustRunCLI(t, op, "documents", "list", "--worker", "--tenant", tenant, "-o", "json")), &docs); err != nil || len(docs) != 4 {
			t.Fatalf("--worker list: %v, %d documents", err, len(docs))
		}
		_, err := runCLI(t, op, "documents", "list", "--worker", "--tenant", "Bad Id")
		if exitCode(err) != exitUsage {
			t.Fatalf("--tenant 'Bad Id': %v (exit %d)", err, exitCode(err))
		}
	})

	t.Run("usage export", func(t *testing.T) {
		month := time.Now().UTC().Format("2006-01")
		file := filepath.Join(t.TempDir(), "usage.csv")
		deadline := time.Now().Add(30 * time.Second)
		var records [][]string
		for {
			MustRunCLI(t, user, "usage", "export", "--month", month, "--tenant", tenant, "--file", file)
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			records, err = csv.NewReader(f).ReadAll()
			f.Close()
			if err != nil {
				t.Fatalf("the export is not CSV: %v", err)
			}
			if len(records) > 1 && records[0][1] == "tenant_id" && hasIngest(records) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no ingestion record of %s in the export after 30s: %v", tenant, records)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, r := range records[1:] {
			if r[1] != tenant {
				t.Fatalf("a record of another tenant: %v", r)
			}
		}
		stdout := MustRunCLI(t, user, "usage", "export", "--month", month, "--tenant", tenant)
		if !strings.HasPrefix(stdout, "id,tenant_id,") {
			t.Fatalf("export to stdout starts %q", firstLine(stdout))
		}
	})
}

// hasIngest is true when a usage export has a record of a document upload.
func hasIngest(records [][]string) bool {
	for _, r := range records[1:] {
		if len(r) > 3 && strings.Contains(r[3], "documents") {
			return true
		}
	}
	return false
}

// TestCLIIngestProgress: on a terminal a progress bar redraws itself on stderr; piped, there
// is no bar, only one plain line per file.
func TestCLIIngestProgress(t *testing.T) {
	_, user := tenantStack(t, "cli_bar")
	dir := writeFiles(t, map[string]string{
		"one.md":   "Passwords rotate every ninety days.",
		"two.md":   "Laptops use full-disk encryption.",
		"three.md": "Visitors sign in at reception.",
	})

	t.Run("terminal", func(t *testing.T) {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatalf("open a pseudo-terminal: %v", err)
		}
		defer ptmx.Close()
		var seen strings.Builder
		var mu sync.Mutex
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 4096)
			for {
				n, err := ptmx.Read(buf)
				mu.Lock()
				seen.Write(buf[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		out, err := runCLIErr(t, user, tty, "ingest", dir)
		tty.Close() // the reader sees EOF (EIO) once everything written has been read
		<-done
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		bar := seen.String()
		mu.Unlock()
		if !strings.Contains(bar, "100%") || !strings.Contains(bar, "(3/3") || !strings.Contains(bar, "\r") || !strings.Contains(bar, "ingesting") {
			t.Fatalf("no progress bar on the terminal:\n%q", bar)
		}
		if strings.Contains(out, "100%") || strings.Count(out, "\n") != 3 {
			t.Fatalf("stdout (not the terminal) got the bar or lacks the lines:\n%q", out)
		}
	})

	t.Run("piped", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		errOut := make(chan string, 1)
		go func() { b, _ := io.ReadAll(r); errOut <- string(b) }()
		out, err := runCLIErr(t, user, w, "ingest", dir)
		w.Close()
		stderr := <-errOut
		if err != nil {
			t.Fatal(err)
		}
		if stderr != "" {
			t.Fatalf("a bar (or anything) on piped stderr: %q", stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || strings.Contains(out, "\r") {
			t.Fatalf("want 3 plain lines, got %q", out)
		}
		for i, want := range []string{"[1/3] one.md", "[2/3] three.md", "[3/3] two.md"} {
			if !strings.HasPrefix(lines[i], want) || !strings.Contains(lines[i], "(already stored)") {
				t.Fatalf("line %d %q, want %q ... (already stored)", i, lines[i], want)
			}
		}
	})
}

// TestCLIMe runs `me` against a real proxy with nothing but its address and an API key: the key
// is exchanged through the proxy (one base URL), and the answer is GET /v1/me's.
func TestCLIMe(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("me_corp", "pro", map[string]any{"top_k": 4})
	proxyURL := st.StartProxy(t)
	key, keyID := st.APIKey("me_corp")
	user := env{"RAGPLANE_API_URL": proxyURL, "RAGPLANE_API_KEY": key}
	var cfg struct {
		Limits map[string]ragplane.Sourced `json:"limits"`
	}
	st.Admin("GET", "/v1/tenants/me_corp/config", nil).Decode(t, &cfg)
	qph := cfg.Limits["queries_per_hour"]

	out := MustRunCLI(t, user, "me")
	if !strings.HasPrefix(out, "tenant me_corp, plan pro (apikey:"+keyID+", roles reader,writer)\n") {
		t.Fatalf("me printed:\n%s", out)
	}
	for _, want := range [][]string{
		{"setting", "top_k", "4", "tenant"},
		{"setting", "embedding_model", "ragplane-hash-v1", "tenant"},
		{"limit", "queries_per_hour", formatValue(qph.Value), string(qph.Source)},
		{"used", "documents", "0", "-"},
	} {
		if !containsRow(out, want) {
			t.Errorf("me lacks the row %v:\n%s", want, out)
		}
	}
	if !rowStarts(out, "remaining", "queries_this_hour") {
		t.Errorf("me lacks queries_this_hour:\n%s", out)
	}
	// Each call is a request of the hour: the second shows one query less (or so: the hourly
	// bucket refills meanwhile), the rest is the same.
	jsonOut, yamlOut := MustRunCLI(t, user, "me", "-o", "json"), MustRunCLI(t, user, "me", "-o", "yaml")
	left := regexp.MustCompile(`(queries_this_hour"?: *)(\d+)`)
	a, b := left.FindStringSubmatch(jsonOut), left.FindStringSubmatch(yamlOut)
	if a == nil || b == nil {
		t.Fatalf("no queries_this_hour in\n%s\n%s", jsonOut, yamlOut)
	}
	if first, _ := strconv.Atoi(a[2]); mustAtoi(t, b[2]) >= first {
		t.Fatalf("queries_this_hour %s then %s, want fewer", a[2], b[2])
	}
	data := mustSameData(t, left.ReplaceAllString(jsonOut, "${1}0"), left.ReplaceAllString(yamlOut, "${1}0"))
	mustField(t, data, "tenant_id", "me_corp")
	mustField(t, data, "used.documents", 0.0)
	mustField(t, data, "settings.top_k.source", "tenant")

	_, err := runCLI(t, env{"RAGPLANE_API_URL": proxyURL, "RAGPLANE_TOKEN": "wrong"}, "me")
	if exitCode(err) != exitAuth {
		t.Fatalf("me with a bad token: %v (exit %d)", err, exitCode(err))
	}
	_, err = runCLI(t, user.with("RAGPLANE_API_KEY", key+"x"), "me")
	if exitCode(err) != exitAuth {
		t.Fatalf("me with a bad key: %v (exit %d)", err, exitCode(err))
	}
	_, err = runCLI(t, env{"RAGPLANE_API_URL": proxyURL}, "me")
	var ce *codedError
	if !errors.As(err, &ce) || exitCode(err) != exitAuth {
		t.Fatalf("me without credentials: %v (exit %d)", err, exitCode(err))
	}
}

func mustAtoi(tb testing.TB, s string) int {
	tb.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// rowStarts is true when a table has a row starting with these columns.
func rowStarts(table string, cols ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) >= len(cols) && strings.Join(f[:len(cols)], " ") == strings.Join(cols, " ") {
			return true
		}
	}
	return false
}

// containsRow is true when a table has a row of exactly these columns.
func containsRow(table string, cols []string) bool {
	for _, line := range strings.Split(table, "\n") {
		if strings.Join(strings.Fields(line), " ") == strings.Join(cols, " ") {
			return true
		}
	}
	return false
}
