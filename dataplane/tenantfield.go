package dataplane

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
)

// tenantField accepts the seeds' tenant_id in a request (the top level of a JSON body, or the
// query string) when it names the token's tenant, and refuses it (403, before anything is done)
// when it names another: it never selects a tenant, the verified token does. An accepted body
// field is removed before the handler decodes the body, so handlers know nothing of it.
func (s *Server) tenantField(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		id, _ := ragplane.IdentityFromContext(r.Context())
		tenant := id.TenantID
		if vs, ok := r.URL.Query()["tenant_id"]; ok {
			for _, v := range vs {
				if err := sameTenant(v, tenant); err != nil {
					return err
				}
			}
		}
		if r.Body == nil || r.Body == http.NoBody || !jsonBody(r) {
			return next(c)
		}
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return err // over the body limit: the limit's own 413
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		// Most requests carry no tenant_id: they are passed on without being parsed twice. A key
		// written with JSON escapes ("tenant\u005fid") is caught by the second test.
		if !bytes.Contains(body, []byte(`"tenant_id"`)) && !bytes.Contains(body, []byte(`\u`)) {
			return next(c)
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(body, &fields) != nil {
			return next(c) // not an object: the handler names the problem
		}
		raw, ok := fields["tenant_id"]
		if !ok {
			return next(c) // the name appears deeper in the body: not ours
		}
		var named string
		if json.Unmarshal(raw, &named) != nil {
			return ragplane.FieldErrorf("tenant_id", "tenant_id must be a string.")
		}
		if err := sameTenant(named, tenant); err != nil {
			return err
		}
		delete(fields, "tenant_id")
		body, err = json.Marshal(fields)
		if err != nil {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return next(c)
	}
}

func sameTenant(named string, tenant ragplane.TenantID) error {
	if named != string(tenant) {
		return &ragplane.Error{Code: ragplane.EFORBIDDEN, Field: "tenant_id",
			Message: "tenant_id names another tenant than the token's; the token alone selects the tenant."}
	}
	return nil
}

// jsonBody reports whether the handler would decode r's body as JSON (which it does without a
// Content-Type too).
func jsonBody(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}
