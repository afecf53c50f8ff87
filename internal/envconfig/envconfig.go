// Package envconfig overlays configuration from environment variables: each service's
// ConfigFromEnv reads its variables through an Env, which leaves a field at its default when the
// variable is empty and collects one error per malformed value, naming the variable.
package envconfig

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Env reads variables through a getenv function and collects parse errors.
type Env struct {
	getenv          func(string) string
	durationExample string // in the error for a malformed duration: "not a duration like 30s"
	errs            []error
}

// New returns an Env reading through getenv, normally os.Getenv; tests pass their own.
// durationExample is a sensible duration for the service ("30s"), quoted in duration errors.
func New(getenv func(string) string, durationExample string) *Env {
	return &Env{getenv: getenv, durationExample: durationExample}
}

// Lookup returns the value of name, "" if unset.
func (e *Env) Lookup(name string) string { return e.getenv(name) }

// Errorf records an error for a value the caller parsed itself.
func (e *Env) Errorf(format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf(format, args...))
}

// Err returns every error recorded, joined; nil if none.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// String sets *dst to the value of name if it is not empty.
func (e *Env) String(name string, dst *string) {
	if v := e.getenv(name); v != "" {
		*dst = v
	}
}

// Bool sets *dst to the value of name (strconv.ParseBool) if it is not empty.
func (e *Env) Bool(name string, dst *bool) {
	if v := e.getenv(name); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.Errorf("%s: want true or false, got %q", name, v)
		}
		*dst = b
	}
}

// Duration sets *dst to the value of name (time.ParseDuration) if it is not empty.
func (e *Env) Duration(name string, dst *time.Duration) {
	if v := e.getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.Errorf("%s: not a duration like %s: %q", name, e.durationExample, v)
		}
		*dst = d
	}
}

// Int sets *dst to the value of name (strconv.Atoi) if it is not empty.
func (e *Env) Int(name string, dst *int) {
	if v := e.getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.Errorf("%s: not a whole number: %q", name, v)
		}
		*dst = n
	}
}
