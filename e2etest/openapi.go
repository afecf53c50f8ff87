package e2etest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ragplane/ragplane/internal/apidocs"
)

// APIDoc checks real requests and responses against an OpenAPI 3.1 document: the operation must
// be documented, the request body valid against its requestBody schema, the response status and
// media type documented, and the body valid against the response schema (for text/event-stream,
// every event named in the media type's x-sse-events, with data valid against that event's
// schema). Schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect), with formats asserted.
type APIDoc struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	ops      []apiOp

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema
	checked map[string]bool
}

type apiOp struct {
	method, path string
	segments     []string
	params       int
	op           map[string]any
	pointer      string // JSON pointer of the operation object
}

const docURL = "https://ragplane.invalid/openapi.json"

// NewAPIDoc parses an OpenAPI document.
func NewAPIDoc(tb testing.TB, raw []byte) *APIDoc {
	tb.Helper()
	parsed, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		tb.Fatalf("openapi document: %v", err)
	}
	doc, ok := parsed.(map[string]any)
	if !ok {
		tb.Fatalf("openapi document is %T, want an object", parsed)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(docURL, doc); err != nil {
		tb.Fatalf("openapi document: %v", err)
	}
	d := &APIDoc{doc: doc, compiler: c, schemas: map[string]*jsonschema.Schema{}, checked: map[string]bool{}}
	paths, _ := doc["paths"].(map[string]any)
	for path, item := range paths {
		item, _ := item.(map[string]any)
		for _, m := range []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"} {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			segs := strings.Split(strings.Trim(path, "/"), "/")
			n := 0
			for _, s := range segs {
				if strings.HasPrefix(s, "{") {
					n++
				}
			}
			d.ops = append(d.ops, apiOp{method: strings.ToUpper(m), path: path, segments: segs, params: n, op: op,
				pointer: "/paths/" + escapePointer(path) + "/" + m})
		}
	}
	// The most literal template wins: /v1/documents/batch before /v1/documents/{id}.
	sort.Slice(d.ops, func(i, j int) bool { return d.ops[i].params < d.ops[j].params })
	return d
}

// TenantAPI is the tenant API's document (internal/apidocs), which the proxy serves.
func TenantAPI(tb testing.TB) *APIDoc {
	tb.Helper()
	return NewAPIDoc(tb, apidocs.TenantOpenAPI)
}

// Operations returns every documented operation as "METHOD /path/{param}".
func (d *APIDoc) Operations() []string {
	var out []string
	for _, o := range d.ops {
		out = append(out, o.method+" "+o.path)
	}
	sort.Strings(out)
	return out
}

// Operation returns the documented operation object of "METHOD /path/{param}", or nil.
func (d *APIDoc) Operation(name string) map[string]any {
	for _, o := range d.ops {
		if o.method+" "+o.path == name {
			return o.op
		}
	}
	return nil
}

// Unchecked returns the documented operations that no Check has covered yet.
func (d *APIDoc) Unchecked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, o := range d.Operations() {
		if !d.checked[o] {
			out = append(out, o)
		}
	}
	return out
}

// Send sends a request to base+path like Send, and checks the request and the response against
// the document (see Check).
func (d *APIDoc) Send(tb testing.TB, base, method, path string, body any, headers ...string) Response {
	tb.Helper()
	return d.send(tb, false, base, method, path, body, headers...)
}

// SendInvalid is Send for a request whose body the document says is invalid (see CheckInvalid):
// the document and the server must agree on bad input.
func (d *APIDoc) SendInvalid(tb testing.TB, base, method, path string, body any, headers ...string) Response {
	tb.Helper()
	return d.send(tb, true, base, method, path, body, headers...)
}

func (d *APIDoc) send(tb testing.TB, invalid bool, base, method, path string, body any, headers ...string) Response {
	tb.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		raw = j
	}
	reqType := ""
	if body != nil {
		reqType = "application/json"
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if http.CanonicalHeaderKey(headers[i]) == "Content-Type" {
			reqType = headers[i+1]
		}
	}
	var sent any
	if body != nil {
		sent = raw
	}
	resp := Send(tb, method, base+path, sent, headers...)
	d.check(tb, invalid, method, path, reqType, raw, resp)
	return resp
}

// Check checks one exchange: the operation of method and path (a query string is allowed) must
// be documented; a request body (reqType its Content-Type) must be valid against the operation's
// requestBody schema; the response's status and media type must be documented and its body valid.
func (d *APIDoc) Check(tb testing.TB, method, path, reqType string, reqBody []byte, resp Response) {
	tb.Helper()
	d.check(tb, false, method, path, reqType, reqBody, resp)
}

// CheckInvalid is Check for a request whose body must NOT be valid against the operation's
// requestBody schema (a test of bad input); the response is checked as by Check.
func (d *APIDoc) CheckInvalid(tb testing.TB, method, path, reqType string, reqBody []byte, resp Response) {
	tb.Helper()
	d.check(tb, true, method, path, reqType, reqBody, resp)
}

func (d *APIDoc) check(tb testing.TB, invalid bool, method, path, reqType string, reqBody []byte, resp Response) {
	tb.Helper()
	u, err := url.Parse(path)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	o := d.match(method, u.Path)
	if o == nil {
		tb.Errorf("%s %s: no documented operation", method, u.Path)
		return
	}
	name := o.method + " " + o.path
	d.mu.Lock()
	d.checked[name] = true
	d.mu.Unlock()
	if len(reqBody) > 0 {
		d.checkRequest(tb, invalid, name, o, reqType, reqBody)
	} else if invalid {
		tb.Errorf("%s: an invalid request needs a body", name)
	}
	d.checkResponse(tb, name, o, resp)
}

func (d *APIDoc) match(method, path string) *apiOp {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i := range d.ops {
		o := &d.ops[i]
		if o.method != method || len(o.segments) != len(segs) {
			continue
		}
		ok := true
		for j, s := range o.segments {
			if !strings.HasPrefix(s, "{") && s != segs[j] {
				ok = false
				break
			}
		}
		if ok {
			return o
		}
	}
	return nil
}

func (d *APIDoc) checkRequest(tb testing.TB, invalid bool, name string, o *apiOp, reqType string, body []byte) {
	tb.Helper()
	rb, _ := o.op["requestBody"].(map[string]any)
	content, _ := rb["content"].(map[string]any)
	mt, _, _ := mime.ParseMediaType(reqType)
	if _, ok := content[mt]; !ok {
		tb.Errorf("%s: request media type %q is not documented (documented: %v)", name, mt, keys(content))
		return
	}
	if !isJSON(mt) {
		if invalid {
			tb.Errorf("%s: only JSON requests are checked for invalidity", name)
		}
		return // a multipart upload: its parts are not JSON
	}
	ptr := o.pointer + "/requestBody/content/" + escapePointer(mt) + "/schema"
	if !invalid {
		d.validate(tb, name+" request", ptr, body)
		return
	}
	sch, err := d.schema(ptr)
	if err != nil {
		tb.Errorf("%s request: compile the schema at %s: %v", name, ptr, err)
		return
	}
	if v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body)); err == nil && sch.Validate(v) == nil {
		tb.Errorf("%s request is valid against the document, but the test sends it as invalid: %.300s", name, body)
	}
}

func (d *APIDoc) checkResponse(tb testing.TB, name string, o *apiOp, resp Response) {
	tb.Helper()
	responses, _ := o.op["responses"].(map[string]any)
	code := strconv.Itoa(resp.Status)
	r, ok := responses[code].(map[string]any)
	if !ok {
		code = "default"
		if r, ok = responses[code].(map[string]any); !ok {
			tb.Errorf("%s: status %d is not documented (body %.300s)", name, resp.Status, resp.Body)
			return
		}
	}
	ptr := o.pointer + "/responses/" + code
	if ref, ok := r["$ref"].(string); ok {
		// A shared response: #/components/responses/<name>.
		ptr = strings.TrimPrefix(ref, "#")
		if r = d.resolve(ptr); r == nil {
			tb.Errorf("%s: status %d: $ref %q does not resolve", name, resp.Status, ref)
			return
		}
	}
	content, _ := r["content"].(map[string]any)
	if len(content) == 0 {
		if len(resp.Body) > 0 {
			tb.Errorf("%s: status %d is documented without a body, got %.300s", name, resp.Status, resp.Body)
		}
		return
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	media, ok := content[mt].(map[string]any)
	if !ok {
		tb.Errorf("%s: status %d: media type %q is not documented (documented: %v)", name, resp.Status, mt, keys(content))
		return
	}
	ptr += "/content/" + escapePointer(mt)
	switch {
	case isJSON(mt):
		d.validate(tb, fmt.Sprintf("%s %d response", name, resp.Status), ptr+"/schema", resp.Body)
	case mt == "text/event-stream":
		events, _ := media["x-sse-events"].(map[string]any)
		if len(events) == 0 {
			tb.Errorf("%s: text/event-stream without x-sse-events", name)
			return
		}
		parsed, err := ParseEvents(resp.Body)
		if err != nil {
			tb.Errorf("%s: %v", name, err)
			return
		}
		if len(parsed) == 0 {
			tb.Errorf("%s: an empty event stream", name)
		}
		for i, ev := range parsed {
			if _, ok := events[ev.Name]; !ok {
				tb.Errorf("%s: event %d %q is not documented (documented: %v)", name, i, ev.Name, keys(events))
				continue
			}
			d.validate(tb, fmt.Sprintf("%s event %d %q", name, i, ev.Name), ptr+"/x-sse-events/"+escapePointer(ev.Name), ev.Data)
		}
	}
}

// resolve returns the object at a JSON pointer of the document, or nil.
func (d *APIDoc) resolve(ptr string) map[string]any {
	var cur any = d.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")]
	}
	m, _ := cur.(map[string]any)
	return m
}

// validate checks a JSON body against the schema at the document's JSON pointer ptr.
func (d *APIDoc) validate(tb testing.TB, what, ptr string, body []byte) {
	tb.Helper()
	sch, err := d.schema(ptr)
	if err != nil {
		tb.Errorf("%s: compile the schema at %s: %v", what, ptr, err)
		return
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		tb.Errorf("%s: not JSON (%v): %.300s", what, err, body)
		return
	}
	if err := sch.Validate(v); err != nil {
		tb.Errorf("%s is not valid against the document: %v\nbody: %.1000s", what, err, body)
	}
}

func (d *APIDoc) schema(ptr string) (*jsonschema.Schema, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.schemas[ptr]; ok {
		return s, nil
	}
	s, err := d.compiler.Compile(docURL + "#" + ptr)
	if err != nil {
		return nil, err
	}
	d.schemas[ptr] = s
	return s, nil
}

// Event is one server-sent event.
type Event struct {
	Name string
	Data []byte
}

// ParseEvents splits a text/event-stream body into its events (name and data; a missing name is
// "message").
func ParseEvents(body []byte) ([]Event, error) {
	var out []Event
	var cur Event
	var data []string
	started := false
	flush := func() {
		if started {
			if cur.Name == "" {
				cur.Name = "message"
			}
			cur.Data = []byte(strings.Join(data, "\n"))
			out = append(out, cur)
		}
		cur, data, started = Event{}, nil, false
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			cur.Name, started = value, true
		case "data":
			data, started = append(data, value), true
		case "", "id", "retry":
		default:
			return nil, fmt.Errorf("event stream: unknown field %q", field)
		}
	}
	flush()
	return out, sc.Err()
}

func isJSON(mt string) bool { return mt == "application/json" || strings.HasSuffix(mt, "+json") }

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CompileAll compiles every request, response and event schema of the document and returns the
// failures.
func (d *APIDoc) CompileAll() []string {
	var errs []string
	for _, o := range d.ops {
		var ptrs []string
		if rb, ok := o.op["requestBody"].(map[string]any); ok {
			content, _ := rb["content"].(map[string]any)
			for mt := range content {
				ptrs = append(ptrs, o.pointer+"/requestBody/content/"+escapePointer(mt)+"/schema")
			}
		}
		responses, _ := o.op["responses"].(map[string]any)
		for code, r := range responses {
			r, _ := r.(map[string]any)
			if ref, ok := r["$ref"].(string); ok {
				ptrs = append(ptrs, strings.TrimPrefix(ref, "#")+"/content/application~1problem+json/schema")
				continue
			}
			content, _ := r["content"].(map[string]any)
			for mt, media := range content {
				base := o.pointer + "/responses/" + code + "/content/" + escapePointer(mt)
				ptrs = append(ptrs, base+"/schema")
				events, _ := media.(map[string]any)["x-sse-events"].(map[string]any)
				for ev := range events {
					ptrs = append(ptrs, base+"/x-sse-events/"+escapePointer(ev))
				}
			}
		}
		for _, p := range ptrs {
			if _, err := d.schema(p); err != nil {
				errs = append(errs, fmt.Sprintf("%s %s: %s: %v", o.method, o.path, p, err))
			}
		}
	}
	sort.Strings(errs)
	return errs
}
