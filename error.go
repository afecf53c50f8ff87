package ragplane

import (
	"errors"
	"fmt"
)

// Error codes. Each service maps them to a transport status in one place.
const (
	EINVALID      = "invalid"      // a value is not acceptable (HTTP 422)
	EMALFORMED    = "malformed"    // the request cannot be parsed (HTTP 400)
	ENOTFOUND     = "not_found"    // the object does not exist, or belongs to another tenant (HTTP 404)
	ECONFLICT     = "conflict"     // the object exists already or is in the wrong state (HTTP 409)
	EUNAUTHORIZED = "unauthorized" // no valid credentials (HTTP 401)
	EFORBIDDEN    = "forbidden"    // valid credentials, action not allowed (HTTP 403)
	EGONE         = "gone"         // the object was deleted (HTTP 410)
	ETOOLARGE     = "too_large"    // the request body or a document is over its limit (HTTP 413)
	ERATELIMITED  = "rate_limited" // too many requests in a window (HTTP 429)
	EQUOTA        = "quota"        // a quota is exhausted (HTTP 429)
	EUNAVAILABLE  = "unavailable"  // a dependency is down or overloaded; retry later (HTTP 503)
	EUPSTREAM     = "upstream"     // an outside provider failed (HTTP 502)
	ETIMEOUT      = "timeout"      // a platform component did not answer in time; retry later (HTTP 504)
	EINTERNAL     = "internal"     // a bug or an unexpected failure (HTTP 500)
)

// Error is an error with a code the client may act on and a message safe to show to it.
// Field names the offending input (a JSON path such as "limits.top_k") when there is one.
type Error struct {
	// Code is one of the E* constants.
	Code string
	// Message is a human-readable description safe to return to a client.
	Message string
	// Field is the input the error is about, if any.
	Field string
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("ragplane error: code=%s field=%s message=%s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("ragplane error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID *Error about one input field.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other error and
// "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of the first *Error in err's chain, or a generic
// message for any other error so that internal details never leak.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// ErrorField returns the field of the first *Error in err's chain, or "".
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
