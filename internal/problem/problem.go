// Package problem renders errors as RFC 9457 problem details (application/problem+json). It is the
// one place where ragplane error codes become HTTP statuses, shared by every service.
package problem

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
)

// ContentType is the media type of problem details.
const ContentType = "application/problem+json"

// Details is an RFC 9457 problem details object with Ragplane's extension members.
type Details struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

var statuses = map[string]int{
	ragplane.EINVALID:      http.StatusUnprocessableEntity,
	ragplane.EMALFORMED:    http.StatusBadRequest,
	ragplane.ENOTFOUND:     http.StatusNotFound,
	ragplane.ECONFLICT:     http.StatusConflict,
	ragplane.EUNAUTHORIZED: http.StatusUnauthorized,
	ragplane.EFORBIDDEN:    http.StatusForbidden,
	ragplane.EGONE:         http.StatusGone,
	ragplane.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	ragplane.ERATELIMITED:  http.StatusTooManyRequests,
	ragplane.EQUOTA:        http.StatusTooManyRequests,
	ragplane.EUNAVAILABLE:  http.StatusServiceUnavailable,
	ragplane.EUPSTREAM:     http.StatusBadGateway,
	ragplane.ETIMEOUT:      http.StatusGatewayTimeout,
	ragplane.EINTERNAL:     http.StatusInternalServerError,
}

// Status returns the HTTP status of an error code.
func Status(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// codeOfStatus maps statuses produced by the router and middleware back to codes.
func codeOfStatus(status int) string {
	switch status {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return ragplane.ENOTFOUND
	case http.StatusRequestEntityTooLarge:
		return ragplane.ETOOLARGE
	case http.StatusUnauthorized:
		return ragplane.EUNAUTHORIZED
	case http.StatusForbidden:
		return ragplane.EFORBIDDEN
	case http.StatusTooManyRequests:
		return ragplane.ERATELIMITED
	case http.StatusServiceUnavailable:
		return ragplane.EUNAVAILABLE
	case http.StatusUnsupportedMediaType, http.StatusBadRequest:
		return ragplane.EMALFORMED
	}
	if status >= 500 {
		return ragplane.EINTERNAL
	}
	return ragplane.EMALFORMED
}

// From builds the problem details of err. Only *ragplane.Error messages and the router's own
// statuses reach the client; anything else becomes a generic 500.
func From(err error) Details {
	var he *echo.HTTPError
	if errors.As(err, &he) && !isRagplane(err) {
		msg := http.StatusText(he.Code)
		if he.Code == http.StatusRequestEntityTooLarge {
			msg = "The request body is larger than allowed."
		} else if he.Code == http.StatusMethodNotAllowed {
			msg = "This method is not allowed on this path."
		}
		return Details{Type: "about:blank", Title: http.StatusText(he.Code), Status: he.Code, Detail: msg, Code: codeOfStatus(he.Code)}
	}
	code := ragplane.ErrorCode(err)
	status := Status(code)
	detail := ragplane.ErrorMessage(err)
	if code == ragplane.EINTERNAL {
		detail = "Internal error." // the detail of an internal error is for the log only
	}
	return Details{
		Type:   "https://ragplane.dev/problems/" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
		Field:  ragplane.ErrorField(err),
	}
}

func isRagplane(err error) bool {
	var e *ragplane.Error
	return errors.As(err, &e)
}

// Write writes err as problem details. Internal errors are logged with their detail, which never
// reaches the client.
func Write(w http.ResponseWriter, r *http.Request, err error, logger *slog.Logger) {
	d := From(err)
	d.Instance = r.URL.Path
	d.RequestID = w.Header().Get(echo.HeaderXRequestID)
	if d.Status >= 500 && logger != nil {
		logger.ErrorContext(r.Context(), "request failed", "status", d.Status, "path", r.URL.Path,
			"request_id", d.RequestID, "error", err)
	}
	if (d.Status == http.StatusServiceUnavailable || d.Status == http.StatusGatewayTimeout) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	if d.Status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ragplane"`)
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(d.Status)
	_ = json.NewEncoder(w).Encode(d)
}

// EchoHandler is an echo.HTTPErrorHandler that writes problem details.
func EchoHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		if c.Request().Method == http.MethodHead {
			c.Response().WriteHeader(From(err).Status)
			return
		}
		Write(c.Response(), c.Request(), err, logger)
	}
}
