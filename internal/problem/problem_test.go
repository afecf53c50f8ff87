package problem_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/problem"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect int
	}{
		{name: "invalid", given: ragplane.EINVALID, expect: http.StatusUnprocessableEntity},
		{name: "malformed", given: ragplane.EMALFORMED, expect: http.StatusBadRequest},
		{name: "not found", given: ragplane.ENOTFOUND, expect: http.StatusNotFound},
		{name: "conflict", given: ragplane.ECONFLICT, expect: http.StatusConflict},
		{name: "unauthorized", given: ragplane.EUNAUTHORIZED, expect: http.StatusUnauthorized},
		{name: "forbidden", given: ragplane.EFORBIDDEN, expect: http.StatusForbidden},
		{name: "gone", given: ragplane.EGONE, expect: http.StatusGone},
		{name: "too large", given: ragplane.ETOOLARGE, expect: http.StatusRequestEntityTooLarge},
		{name: "rate limited", given: ragplane.ERATELIMITED, expect: http.StatusTooManyRequests},
		{name: "quota", given: ragplane.EQUOTA, expect: http.StatusTooManyRequests},
		{name: "unavailable", given: ragplane.EUNAVAILABLE, expect: http.StatusServiceUnavailable},
		{name: "upstream", given: ragplane.EUPSTREAM, expect: http.StatusBadGateway},
		{name: "timeout", given: ragplane.ETIMEOUT, expect: http.StatusGatewayTimeout},
		{name: "internal", given: ragplane.EINTERNAL, expect: http.StatusInternalServerError},
		{name: "unknown code", given: "no_such_code", expect: http.StatusInternalServerError},
		{name: "empty code", given: "", expect: http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := problem.Status(tt.given); got != tt.expect {
				t.Fatalf("Status(%q) = %d, want %d", tt.given, got, tt.expect)
			}
			d := problem.From(&ragplane.Error{Code: tt.given, Message: "msg"})
			if d.Status != tt.expect {
				t.Fatalf("From(code %q).Status = %d, want %d", tt.given, d.Status, tt.expect)
			}
		})
	}
}

func TestFrom(t *testing.T) {
	const secret = "pq: password authentication failed for user tenant_x at 10.0.0.7"
	tests := []struct {
		name   string
		given  error
		expect problem.Details
	}{
		{
			name:  "ragplane error with field",
			given: ragplane.FieldErrorf("limits.top_k", "Must be between 1 and 100."),
			expect: problem.Details{Type: "https://ragplane.dev/problems/invalid", Title: "Unprocessable Entity", Status: 422,
				Detail: "Must be between 1 and 100.", Code: ragplane.EINVALID, Field: "limits.top_k"},
		},
		{
			name:  "wrapped ragplane error",
			given: fmt.Errorf("catalog: lookup: %w", ragplane.Errorf(ragplane.ENOTFOUND, "Tenant %q not found.", "acme")),
			expect: problem.Details{Type: "https://ragplane.dev/problems/not_found", Title: "Not Found", Status: 404,
				Detail: `Tenant "acme" not found.`, Code: ragplane.ENOTFOUND},
		},
		{
			name:  "plain error",
			given: errors.New(secret),
			expect: problem.Details{Type: "https://ragplane.dev/problems/internal", Title: "Internal Server Error", Status: 500,
				Detail: "Internal error.", Code: ragplane.EINTERNAL},
		},
		{
			name:  "wrapped plain error",
			given: fmt.Errorf("provision: %w", errors.New(secret)),
			expect: problem.Details{Type: "https://ragplane.dev/problems/internal", Title: "Internal Server Error", Status: 500,
				Detail: "Internal error.", Code: ragplane.EINTERNAL},
		},
		{
			name:  "router 404",
			given: echo.ErrNotFound,
			expect: problem.Details{Type: "about:blank", Title: "Not Found", Status: 404,
				Detail: "Not Found", Code: ragplane.ENOTFOUND},
		},
		{
			name:  "router 405",
			given: echo.ErrMethodNotAllowed,
			expect: problem.Details{Type: "about:blank", Title: "Method Not Allowed", Status: 405,
				Detail: "This method is not allowed on this path.", Code: ragplane.ENOTFOUND},
		},
		{
			name:  "body limit 413",
			given: echo.ErrStatusRequestEntityTooLarge,
			expect: problem.Details{Type: "about:blank", Title: "Request Entity Too Large", Status: 413,
				Detail: "The request body is larger than allowed.", Code: ragplane.ETOOLARGE},
		},
		{
			name:  "middleware 401",
			given: echo.NewHTTPError(http.StatusUnauthorized, "missing or malformed jwt"),
			expect: problem.Details{Type: "about:blank", Title: "Unauthorized", Status: 401,
				Detail: "Unauthorized", Code: ragplane.EUNAUTHORIZED},
		},
		{
			name:  "middleware 415",
			given: echo.ErrUnsupportedMediaType,
			expect: problem.Details{Type: "about:blank", Title: "Unsupported Media Type", Status: 415,
				Detail: "Unsupported Media Type", Code: ragplane.EMALFORMED},
		},
		{
			name:  "echo error with internal detail",
			given: echo.NewHTTPError(http.StatusInternalServerError, secret).SetInternal(errors.New(secret)),
			expect: problem.Details{Type: "about:blank", Title: "Internal Server Error", Status: 500,
				Detail: "Internal Server Error", Code: ragplane.EINTERNAL},
		},
		{
			name:  "echo error wrapping a ragplane error",
			given: echo.NewHTTPError(http.StatusBadRequest).SetInternal(ragplane.Errorf(ragplane.ECONFLICT, "Taken.")),
			expect: problem.Details{Type: "https://ragplane.dev/problems/conflict", Title: "Conflict", Status: 409,
				Detail: "Taken.", Code: ragplane.ECONFLICT},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problem.From(tt.given)
			if got != tt.expect {
				t.Fatalf("From = %+v\nwant   %+v", got, tt.expect)
			}
			if strings.Contains(got.Detail, "password") || strings.Contains(got.Title, "password") {
				t.Fatalf("details leak the error text: %+v", got)
			}
		})
	}
}

// MustDecode decodes a problem+json body.
func MustDecode(tb testing.TB, body []byte) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatalf("decode %s: %v", body, err)
	}
	return m
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name            string
		given           error
		expectStatus    int
		expectChallenge bool
	}{
		{name: "not found", given: ragplane.Errorf(ragplane.ENOTFOUND, "No such tenant."), expectStatus: 404},
		{name: "unauthorized", given: ragplane.Errorf(ragplane.EUNAUTHORIZED, "Invalid API key."), expectStatus: 401, expectChallenge: true},
		{name: "router unauthorized", given: echo.ErrUnauthorized, expectStatus: 401, expectChallenge: true},
		{name: "forbidden", given: ragplane.Errorf(ragplane.EFORBIDDEN, "No."), expectStatus: 403},
		{name: "internal", given: errors.New("boom"), expectStatus: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set(echo.HeaderXRequestID, "req-123")
			r := httptest.NewRequest(http.MethodGet, "/v1/tenants/acme?x=1", nil)
			problem.Write(rec, r, tt.given, nil)

			if rec.Code != tt.expectStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.expectStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
				t.Fatalf("Content-Type = %q, want %q", ct, problem.ContentType)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Fatalf("Cache-Control = %q, want no-store", cc)
			}
			challenge := rec.Header().Get("WWW-Authenticate")
			if tt.expectChallenge != (challenge != "") {
				t.Fatalf("WWW-Authenticate = %q, want present=%v", challenge, tt.expectChallenge)
			}
			if tt.expectChallenge && !strings.HasPrefix(challenge, "Bearer ") {
				t.Fatalf("WWW-Authenticate = %q, want a Bearer challenge", challenge)
			}
			body := MustDecode(t, rec.Body.Bytes())
			if body["request_id"] != "req-123" || body["instance"] != "/v1/tenants/acme" {
				t.Fatalf("request_id %v, instance %v", body["request_id"], body["instance"])
			}
			if int(body["status"].(float64)) != tt.expectStatus || body["code"] == "" {
				t.Fatalf("body %v", body)
			}
		})
	}

	t.Run("existing challenge is kept", func(t *testing.T) {
		rec := httptest.NewRecorder()
		rec.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		problem.Write(rec, httptest.NewRequest(http.MethodGet, "/", nil), ragplane.Errorf(ragplane.EUNAUTHORIZED, "Expired."), nil)
		if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Fatalf("WWW-Authenticate = %q, want the handler's own", got)
		}
	})

	t.Run("a timeout says when to retry", func(t *testing.T) {
		rec := httptest.NewRecorder()
		problem.Write(rec, httptest.NewRequest(http.MethodGet, "/", nil), ragplane.Errorf(ragplane.ETIMEOUT, "Too slow."), nil)
		if rec.Code != http.StatusGatewayTimeout || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("status %d, Retry-After %q, want 504 with a Retry-After", rec.Code, rec.Header().Get("Retry-After"))
		}
	})

	t.Run("no request id", func(t *testing.T) {
		rec := httptest.NewRecorder()
		problem.Write(rec, httptest.NewRequest(http.MethodGet, "/", nil), ragplane.Errorf(ragplane.ECONFLICT, "x"), nil)
		if _, ok := MustDecode(t, rec.Body.Bytes())["request_id"]; ok {
			t.Fatal("request_id present without a request id header")
		}
	})
}

func TestWriteLogsInternalErrorsOnly(t *testing.T) {
	const secret = "dial tcp 10.0.0.7:5432: password=hunter2 rejected"
	tests := []struct {
		name      string
		given     error
		expectLog bool
	}{
		{name: "plain error", given: fmt.Errorf("provision tenant acme: %w", errors.New(secret)), expectLog: true},
		{name: "unavailable", given: ragplane.Errorf(ragplane.EUNAVAILABLE, "The catalog did not answer in time."), expectLog: true},
		{name: "client error", given: ragplane.Errorf(ragplane.ENOTFOUND, "Tenant not found."), expectLog: false},
		{name: "rate limited", given: ragplane.Errorf(ragplane.ERATELIMITED, "Slow down."), expectLog: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&logs, nil))
			rec := httptest.NewRecorder()
			rec.Header().Set(echo.HeaderXRequestID, "req-9")
			problem.Write(rec, httptest.NewRequest(http.MethodPost, "/v1/tenants", nil), tt.given, logger)

			if logged := logs.Len() > 0; logged != tt.expectLog {
				t.Fatalf("logged = %v, want %v: %s", logged, tt.expectLog, logs.String())
			}
			if !tt.expectLog {
				return
			}
			var entry map[string]any
			if err := json.Unmarshal(logs.Bytes(), &entry); err != nil {
				t.Fatalf("log line %s: %v", logs.Bytes(), err)
			}
			if entry["level"] != "ERROR" || entry["request_id"] != "req-9" || entry["path"] != "/v1/tenants" {
				t.Fatalf("log entry %v", entry)
			}
			if got, _ := entry["error"].(string); got != tt.given.Error() {
				t.Fatalf("logged err = %q, want the full error %q", got, tt.given.Error())
			}
			if strings.Contains(rec.Body.String(), "hunter2") || strings.Contains(rec.Body.String(), "10.0.0.7") {
				t.Fatalf("response leaks the error: %s", rec.Body.String())
			}
		})
	}
}

func TestEchoHandler(t *testing.T) {
	var logs bytes.Buffer
	e := echo.New()
	e.HTTPErrorHandler = problem.EchoHandler(slog.New(slog.NewJSONHandler(&logs, nil)))
	e.GET("/conflict", func(c echo.Context) error { return ragplane.Errorf(ragplane.ECONFLICT, "Busy.") })
	e.GET("/boom", func(c echo.Context) error { return errors.New("secret internal failure") })
	e.GET("/committed", func(c echo.Context) error {
		c.Response().WriteHeader(http.StatusAccepted)
		_, _ = c.Response().Write([]byte("partial"))
		return errors.New("failed after writing")
	})
	e.HEAD("/conflict", func(c echo.Context) error { return ragplane.Errorf(ragplane.ECONFLICT, "Busy.") })

	tests := []struct {
		name         string
		method, path string
		expectStatus int
		expectCode   string // "" when no problem body is expected
	}{
		{name: "handler error", method: http.MethodGet, path: "/conflict", expectStatus: 409, expectCode: ragplane.ECONFLICT},
		{name: "internal error", method: http.MethodGet, path: "/boom", expectStatus: 500, expectCode: ragplane.EINTERNAL},
		{name: "unknown route", method: http.MethodGet, path: "/nope", expectStatus: 404, expectCode: ragplane.ENOTFOUND},
		{name: "wrong method", method: http.MethodPost, path: "/conflict", expectStatus: 405, expectCode: ragplane.ENOTFOUND},
		{name: "head has no body", method: http.MethodHead, path: "/conflict", expectStatus: 409},
		{name: "committed response is left alone", method: http.MethodGet, path: "/committed", expectStatus: 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.expectStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.expectStatus, rec.Body)
			}
			if tt.expectCode == "" {
				if strings.Contains(rec.Body.String(), `"code"`) {
					t.Fatalf("unexpected problem body %s", rec.Body)
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
				t.Fatalf("Content-Type = %q", ct)
			}
			if got := MustDecode(t, rec.Body.Bytes())["code"]; got != tt.expectCode {
				t.Fatalf("code = %v, want %s", got, tt.expectCode)
			}
			if strings.Contains(rec.Body.String(), "secret") {
				t.Fatalf("response leaks the error: %s", rec.Body)
			}
		})
	}
	if !strings.Contains(logs.String(), "secret internal failure") {
		t.Fatalf("internal error not logged: %s", logs.String())
	}
}
