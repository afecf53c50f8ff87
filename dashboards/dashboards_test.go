package dashboards_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/openaitest"
	"gopkg.in/yaml.v3"
)

// tool finds a Prometheus binary: $env (written by `make up` to stack.env), else PATH. Without it
// the test skips, or fails under RAGPLANE_REQUIRE_STACK=1 (make test).
func tool(tb testing.TB, name, env string) string {
	tb.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
		tb.Fatalf("%s not found (set %s or put it on PATH): run `make up`, which installs it", name, env)
	}
	tb.Skipf("%s not found; `make up` installs it", name)
	return ""
}

func run(tb testing.TB, bin string, args ...string) {
	tb.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
}

// The Prometheus config and alert rules are valid, and every alert fires and stays silent where
// ops/prometheus/alerts_test.yml says.
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool", "PROMTOOL_BIN")
	dir := filepath.Join("..", "ops", "prometheus")
	run(t, promtool, "check", "config", filepath.Join(dir, "prometheus.yml"))
	run(t, promtool, "check", "rules", filepath.Join(dir, "alerts.yml"))
	run(t, promtool, "test", "rules", filepath.Join(dir, "alerts_test.yml"))

	// Every alert in alerts.yml has a unit test.
	rules, err := os.ReadFile(filepath.Join(dir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(dir, "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(rules), -1) {
		if !bytes.Contains(tests, []byte("alertname: "+m[1]+"\n")) {
			t.Errorf("alert %s has no test in alerts_test.yml", m[1])
		}
	}

	// Every alert has a runbook_url that points to its own section of ops/runbooks.md.
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &file); err != nil {
		t.Fatal(err)
	}
	book, err := os.ReadFile(filepath.Join("..", "ops", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)$`).FindAllStringSubmatch(string(book), -1) {
		sections[strings.ToLower(m[1])] = true // GitHub's anchor of a one-word heading
	}
	const prefix = "https://github.com/ragplane/ragplane/blob/main/ops/runbooks.md#"
	alerts := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			url := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(url, prefix)
			if !ok || anchor != strings.ToLower(r.Alert) || !sections[anchor] {
				t.Errorf("alert %s: runbook_url %q must be %s%s, a section of ops/runbooks.md", r.Alert, url, prefix, strings.ToLower(r.Alert))
			}
		}
	}
	if alerts == 0 {
		t.Fatal("no alerts parsed from alerts.yml")
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name    string `json:"name"`
			Type    string `json:"type"`
			Query   any    `json:"query"` // {"query": ...} for a query variable, the plugin id for a datasource variable
			Current struct {
				Value string `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

// query is one panel target to check.
type query struct{ where, expr string }

func loadDashboards(tb testing.TB) ([]dashboard, []query) {
	tb.Helper()
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no dashboards: %v", err)
	}
	var dashboards []dashboard
	var queries []query
	uids := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(data, &d); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || uids[d.UID] || d.SchemaVersion < 36 {
			tb.Errorf("%s: uid %q (unique, not empty) and schemaVersion %d (>= 36)", f, d.UID, d.SchemaVersion)
		}
		uids[d.UID] = true
		// Importable into any Grafana: the datasource is an input of the import and a variable of
		// the dashboard (provisioned dashboards take the default Prometheus), never a fixed uid.
		if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
			tb.Errorf("%s: __inputs must declare the Prometheus datasource DS_PROMETHEUS, got %+v", f, d.Inputs)
		}
		if l := d.Templating.List; len(l) == 0 || l[0].Name != "datasource" || l[0].Type != "datasource" || l[0].Query != "prometheus" || l[0].Current.Value != "${DS_PROMETHEUS}" {
			tb.Errorf("%s: the first variable must be $datasource (type datasource, prometheus, current ${DS_PROMETHEUS})", f)
		}
		if bytes.Contains(data, []byte("ragplane-prometheus")) {
			tb.Errorf("%s: names the provisioned datasource's uid; use ${datasource}", f)
		}
		ids := map[int]bool{}
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				if ids[p.ID] {
					tb.Errorf("%s: panel id %d used twice", f, p.ID)
				}
				ids[p.ID] = true
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
					tb.Errorf("%s: panel %q needs the ${datasource} datasource and a target", f, p.Title)
				}
				for _, tg := range p.Targets {
					queries = append(queries, query{where: fmt.Sprintf("%s / %s / %s", d.Title, p.Title, tg.RefID), expr: tg.Expr})
				}
			}
		}
		walk(d.Panels)
		for _, v := range d.Templating.List {
			// label_values(metric, label): the metric must have series.
			q, _ := v.Query.(map[string]any)
			expr, _ := q["query"].(string)
			if m := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`).FindStringSubmatch(expr); m != nil {
				queries = append(queries, query{where: fmt.Sprintf("%s / $%s", d.Title, v.Name), expr: m[1]})
			}
		}
		dashboards = append(dashboards, d)
	}
	return dashboards, queries
}

// Every panel query of every dashboard returns data from a Prometheus scraping the real services
// after a short load of ingestion, search, queries, rate-limited and concurrency-rejected requests.
func TestPanelsReturnData(t *testing.T) {
	promBin := tool(t, "prometheus", "PROMETHEUS_BIN")
	_, queries := loadDashboards(t)

	model := newHeldModel(t)
	defer model.releaseAll() // before the stack stops: its worker waits for the held query
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) {
		c.OpenAI.BaseURL, c.OpenAI.APIKey = model.ai.URL, model.ai.APIKey
	}})
	const tenant = "dash_acme"
	st.CreateTenant(tenant, "pro", map[string]any{"answer_provider": "openai"})
	pr := st.StartProxyWithAdmin(t)
	px := pr.URL
	prom := startPrometheus(t, promBin, map[string]string{
		"ragplane-controlplane": st.AdminURL, "ragplane-proxy": pr.AdminURL, "ragplane-dataplane": st.WorkerURL})
	tok := st.Token(tenant)
	load(t, st, px, tok, tenant, model)

	// Wait until every query has data: histogram and counter rates need two scrapes after the
	// series appear.
	subst := strings.NewReplacer("$tenant", tenant, "${tenant}", tenant, "$__rate_interval", "30s",
		"$__interval", "30s", "$__range", "5m")
	deadline := time.Now().Add(20 * time.Second)
	pending := queries
	var failures []string
	for {
		failures = failures[:0]
		var still []query
		for _, q := range pending {
			if msg := prom.empty(subst.Replace(q.expr)); msg != "" {
				still = append(still, q)
				failures = append(failures, fmt.Sprintf("%s: %s\n    %s", q.where, msg, q.expr))
			}
		}
		pending = still
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if len(failures) > 0 {
		sort.Strings(failures)
		t.Fatalf("%d of %d panel queries return no data:\n%s", len(failures), len(queries), strings.Join(failures, "\n"))
	}
	t.Logf("%d panel queries return data", len(queries))
}

func mustStatus(tb testing.TB, r e2etest.Response, want int, what string) {
	tb.Helper()
	if r.Status != want {
		tb.Fatalf("%s: status %d, want %d: %s", what, r.Status, want, r.Body)
	}
}

// load sends the traffic the dashboards chart.
func load(t *testing.T, st *e2etest.Stack, px, tok, tenant string, model *heldModel) {
	t.Helper()
	auth := []string{"Authorization", "Bearer " + tok}
	call := func(method, path string, body any) e2etest.Response {
		return e2etest.Send(t, method, px+path, body, auth...)
	}
	docs := []string{
		"Backups are encrypted with AES-256 and kept for 30 days in Oslo.",
		"The incident response plan pages the on-call engineer within five minutes.",
		"Customer data is deleted within 30 days after the contract ends.",
	}
	for i, c := range docs {
		mustStatus(t, call("POST", "/v1/documents", map[string]any{"title": fmt.Sprintf("Policy %d", i), "content": c}), http.StatusCreated, "ingest")
	}
	mustStatus(t, call("GET", "/v1/documents", nil), http.StatusOK, "list")
	for _, mode := range []string{"vector", "keyword", "hybrid", "graph"} {
		mustStatus(t, call("POST", "/v1/search", map[string]any{"query": "backups encrypted", "retrieval_mode": mode}), http.StatusOK, "search "+mode)
	}
	for _, mode := range []string{"hybrid", "vector", "keyword"} {
		mustStatus(t, call("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?", "retrieval_mode": mode}), http.StatusOK, "query "+mode)
	}
	mustStatus(t, st.Admin("GET", "/v1/tenants", nil), http.StatusOK, "admin list tenants")
	mustStatus(t, st.Admin("GET", "/v1/tenants/"+tenant, nil), http.StatusOK, "admin get tenant")

	// A concurrency cap of 1, held by a query the model answers only when released: the next
	// request is refused for concurrency, and says so. The rate limit is raised in the same change
	// so that nothing else can refuse it.
	setLimits(t, st, tenant, map[string]any{"max_concurrent_requests": 1, "requests_per_second": 100, "burst": 50})
	st.WaitPolicies(t, tenant)
	held := make(chan int, 1)
	go func() {
		held <- rawStatus("POST", px+"/v1/query", tok, `{"query":"`+holdQuestion+`","retrieval_mode":"keyword"}`)
	}()
	select {
	case <-model.arrived: // the query holds the slot until released
	case status := <-held:
		t.Fatalf("the held query ended before it reached the model: status %d", status)
	case <-time.After(30 * time.Second):
		t.Fatal("the held query never reached the model")
	}
	r := call("GET", "/v1/documents", nil)
	mustStatus(t, r, http.StatusTooManyRequests, "a request over the concurrency cap")
	if p := r.Problem(t); p["field"] != "max_concurrent_requests" {
		t.Fatalf("the refusal is not the concurrency cap's: %v", p)
	}
	model.releaseAll()
	if status := <-held; status != http.StatusOK {
		t.Fatalf("the held query answered %d after its release", status)
	}

	// A tight rate limit: with a burst of 1 the second request at the latest is refused (a changed
	// limit starts a fresh bucket). The cap is raised so that nothing else can refuse it.
	setLimits(t, st, tenant, map[string]any{"max_concurrent_requests": 10, "requests_per_second": 0.5, "burst": 1})
	st.WaitPolicies(t, tenant)
	for i := 0; ; i++ {
		r := call("GET", "/v1/documents", nil)
		if r.Status == http.StatusTooManyRequests {
			if p := r.Problem(t); p["field"] != "requests_per_second" {
				t.Fatalf("the refusal is not the rate limit's: %v", p)
			}
			break
		}
		mustStatus(t, r, http.StatusOK, "a request under the rate limit")
		if i == 5 {
			t.Fatal("no request refused under a rate limit of 0.5/s with a burst of 1")
		}
	}
	for i := 0; i < 5; i++ {
		rawStatus("GET", px+"/v1/documents", tok, "")
	}
	setLimits(t, st, tenant, map[string]any{"requests_per_second": 100, "burst": 50})
}

func setLimits(t *testing.T, st *e2etest.Stack, tenant string, limits map[string]any) {
	t.Helper()
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/"+tenant, map[string]any{"limits": limits}), http.StatusOK, "set limits")
}

// holdQuestion is the query heldModel holds. Its words are in a document, so the query has
// sources and reaches the model (without sources the worker answers without one).
const holdQuestion = "Within how many minutes is the on-call engineer paged?"

// heldModel is the tenant's model. It answers every chat request at once (graph extraction gets an
// answer that is not the JSON it asks for, so the worker falls back to the rule-based extractor as
// it would without a model), except those about holdQuestion: each of these signals arrived,
// then waits until releaseAll.
type heldModel struct {
	ai      *openaitest.Server
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func newHeldModel(t *testing.T) *heldModel {
	m := &heldModel{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	m.ai = openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		for _, msg := range req.Messages {
			if strings.Contains(msg.Content, holdQuestion) {
				select {
				case m.arrived <- struct{}{}:
				default:
				}
				<-m.release
				break
			}
		}
		return openaitest.DefaultChat(req)
	}})
	return m
}

// releaseAll lets held requests, and every later one, answer.
func (m *heldModel) releaseAll() { m.once.Do(func() { close(m.release) }) }

// rawStatus sends one request and returns its status (0 on a transport error); safe in goroutines.
func rawStatus(method, u, tok, body string) int {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// prometheus is a Prometheus server run by the test.
type prometheus struct{ url string }

// startPrometheus runs bin on a free loopback port, scraping each job's URL every second, stopped
// when the test ends; it returns once every target has been scraped successfully.
func startPrometheus(t *testing.T, bin string, jobs map[string]string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for job, u := range jobs {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&cfg, "  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", job, pu.Host)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr,
		"--web.console.templates="+dir, "--web.console.libraries="+dir)
	cmd.Stdout, cmd.Stderr = &syncWriter{w: &logs}, &syncWriter{w: &logs}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	p := &prometheus{url: "http://" + addr}
	deadline := time.Now().Add(20 * time.Second)
	for {
		up, msg := p.targetsUp(len(jobs))
		if up {
			return p
		}
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape every target within 20s: %s\n%s", msg, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (p *prometheus) get(path string, v any) error {
	resp, err := http.Get(p.url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
	}
	return nil
}

// targetsUp reports whether n active targets have all been scraped successfully.
func (p *prometheus) targetsUp(n int) (bool, string) {
	var r struct {
		Data struct {
			ActiveTargets []struct {
				ScrapePool string `json:"scrapePool"`
				Health     string `json:"health"`
				LastError  string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := p.get("/api/v1/targets", &r); err != nil {
		return false, err.Error()
	}
	var bad []string
	for _, tg := range r.Data.ActiveTargets {
		if tg.Health != "up" {
			bad = append(bad, tg.ScrapePool+": "+tg.Health+" "+tg.LastError)
		}
	}
	return len(r.Data.ActiveTargets) == n && len(bad) == 0, fmt.Sprintf("%d targets, not up: %v", len(r.Data.ActiveTargets), bad)
}

// empty returns why expr has no data now, or "" if it returns at least one sample.
func (p *prometheus) empty(expr string) string {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &r); err != nil {
		return err.Error()
	}
	if r.Status != "success" {
		return "query error: " + r.Error
	}
	if len(r.Data.Result) == 0 {
		return "empty result"
	}
	return ""
}
