package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// cliContext is what every operator command shares: where the admin API is and how to print.
type cliContext struct {
	getenv   func(string) string
	adminURL string
	json     bool
	output   string
}

func (c *cliContext) baseURL() string {
	if c.adminURL != "" {
		return strings.TrimRight(c.adminURL, "/")
	}
	if v := c.getenv("RAGPLANE_ADMIN_URL"); v != "" {
		return strings.TrimRight(v, "/")
	}
	return "http://127.0.0.1:8081"
}

// apiError is a problem+json answer from the admin API.
type apiError struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

func (e *apiError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%d %s: %s: %s", e.Status, e.Code, e.Field, e.Detail)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Detail)
}

// call sends a request to the admin API with the admin token (or the given bearer) and decodes
// the JSON answer into out.
func (c *cliContext) call(ctx context.Context, method, path string, body any, out any, headers ...string) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL()+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := c.getenv("RAGPLANE_ADMIN_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if out == nil {
		var discard json.RawMessage
		return send(req, "admin API at "+c.baseURL(), &discard)
	}
	return send(req, "admin API at "+c.baseURL(), out)
}

// printJSON prints v indented.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printTable prints rows under a header, aligned.
func printTable(header []string, rows [][]string) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	w.Flush()
}

// formatValue prints JSON numbers that are whole as integers (1000000, not 1e+06).
func formatValue(v any) string {
	if f, ok := v.(float64); ok && f == float64(int64(f)) {
		return fmt.Sprint(int64(f))
	}
	if v == "" {
		return `""` // an empty string is a value: a blank cell would shift the columns
	}
	return fmt.Sprint(v)
}
