package ragplane_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
)

// assertErr fails tb unless err carries code and field. An empty code means err must be nil.
func assertErr(tb testing.TB, err error, code, field string) {
	tb.Helper()
	if code == "" {
		if err != nil {
			tb.Fatalf("unexpected error: code=%q field=%q: %v", ragplane.ErrorCode(err), ragplane.ErrorField(err), err)
		}
		return
	}
	if err == nil {
		tb.Fatalf("expected error code=%q field=%q, got nil", code, field)
	}
	if got := ragplane.ErrorCode(err); got != code {
		tb.Fatalf("ErrorCode = %q, want %q (%v)", got, code, err)
	}
	if got := ragplane.ErrorField(err); got != field {
		tb.Fatalf("ErrorField = %q, want %q (%v)", got, field, err)
	}
}

func TestErrorAccessors(t *testing.T) {
	const secret = "password authentication failed for user tenant_acme host 10.0.0.7"
	fieldErr := ragplane.FieldErrorf("limits.max_top_k", "Must be between %v and %v.", 1, 100)
	notFound := ragplane.Errorf(ragplane.ENOTFOUND, "Tenant %q not found.", "acme")

	type expect struct {
		code    string
		field   string
		message string // exact client message; ignored when generic is set
		generic bool   // the message must be the generic internal one and must not leak the error text
	}
	tests := []struct {
		name   string
		given  error
		expect expect
	}{
		{
			name:   "nil",
			given:  nil,
			expect: expect{code: "", field: "", message: ""},
		},
		{
			name:   "Error with code",
			given:  notFound,
			expect: expect{code: ragplane.ENOTFOUND, message: `Tenant "acme" not found.`},
		},
		{
			name:   "FieldErrorf is EINVALID with its field",
			given:  fieldErr,
			expect: expect{code: ragplane.EINVALID, field: "limits.max_top_k", message: "Must be between 1 and 100."},
		},
		{
			name:   "wrapped once",
			given:  fmt.Errorf("update tenant: %w", fieldErr),
			expect: expect{code: ragplane.EINVALID, field: "limits.max_top_k", message: "Must be between 1 and 100."},
		},
		{
			name:   "wrapped twice",
			given:  fmt.Errorf("handler: %w", fmt.Errorf("catalog: %w", notFound)),
			expect: expect{code: ragplane.ENOTFOUND, message: `Tenant "acme" not found.`},
		},
		{
			name:   "joined with a plain error",
			given:  errors.Join(errors.New(secret), ragplane.Errorf(ragplane.ECONFLICT, "Tenant exists.")),
			expect: expect{code: ragplane.ECONFLICT, message: "Tenant exists."},
		},
		{
			name:   "plain error",
			given:  errors.New(secret),
			expect: expect{code: ragplane.EINTERNAL, generic: true},
		},
		{
			name:   "wrapped plain error",
			given:  fmt.Errorf("connect: %s: %w", secret, io.ErrUnexpectedEOF),
			expect: expect{code: ragplane.EINTERNAL, generic: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ragplane.ErrorCode(tc.given); got != tc.expect.code {
				t.Errorf("ErrorCode = %q, want %q", got, tc.expect.code)
			}
			if got := ragplane.ErrorField(tc.given); got != tc.expect.field {
				t.Errorf("ErrorField = %q, want %q", got, tc.expect.field)
			}
			msg := ragplane.ErrorMessage(tc.given)
			if !tc.expect.generic {
				if msg != tc.expect.message {
					t.Errorf("ErrorMessage = %q, want %q", msg, tc.expect.message)
				}
				return
			}
			if msg == "" {
				t.Errorf("ErrorMessage is empty, want a generic message")
			}
			if strings.Contains(msg, "password") || strings.Contains(msg, "10.0.0.7") || strings.Contains(msg, tc.given.Error()) {
				t.Errorf("ErrorMessage %q leaks the internal error %q", msg, tc.given)
			}
			if other := ragplane.ErrorMessage(errors.New("something else")); msg != other {
				t.Errorf("ErrorMessage = %q for one plain error and %q for another, want one generic message", msg, other)
			}
		})
	}
}

func TestErrorIsFoundByErrorsAs(t *testing.T) {
	tests := []struct {
		name   string
		given  error
		expect *ragplane.Error
	}{
		{
			name:   "Errorf",
			given:  ragplane.Errorf(ragplane.EQUOTA, "Monthly tokens used up."),
			expect: &ragplane.Error{Code: ragplane.EQUOTA, Message: "Monthly tokens used up."},
		},
		{
			name:   "wrapped FieldErrorf",
			given:  fmt.Errorf("x: %w", ragplane.FieldErrorf("email", "Bad %s.", "email")),
			expect: &ragplane.Error{Code: ragplane.EINVALID, Field: "email", Message: "Bad email."},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e *ragplane.Error
			if !errors.As(tc.given, &e) {
				t.Fatalf("errors.As found no *ragplane.Error in %v", tc.given)
			}
			if *e != *tc.expect {
				t.Fatalf("got %+v, want %+v", *e, *tc.expect)
			}
		})
	}
}
