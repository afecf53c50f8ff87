package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/pgerr"
)

func TestTranslate(t *testing.T) {
	pg := func(code string) error {
		return fmt.Errorf("query: %w", &pgconn.PgError{Code: code, Message: "secret value 'hunter2'"})
	}
	coded := ragplane.Errorf(ragplane.EQUOTA, "Over quota.")
	tests := []struct {
		name   string
		given  error
		expect string // ragplane code; "" for nil, EINTERNAL for a wrapped error
	}{
		{name: "nil", given: nil, expect: ""},
		{name: "ragplane error passes through", given: coded, expect: ragplane.EQUOTA},
		{name: "no rows", given: fmt.Errorf("scan: %w", pgx.ErrNoRows), expect: ragplane.ENOTFOUND},
		{name: "unique violation", given: pg(pgerr.UniqueViolation), expect: ragplane.ECONFLICT},
		{name: "check violation", given: pg(pgerr.CheckViolation), expect: ragplane.EINVALID},
		{name: "not-null violation", given: pg(pgerr.NotNullViolation), expect: ragplane.EINVALID},
		{name: "invalid text", given: pg(pgerr.InvalidTextRepresentation), expect: ragplane.EINVALID},
		{name: "deadline", given: fmt.Errorf("x: %w", context.DeadlineExceeded), expect: ragplane.EUNAVAILABLE},
		{name: "canceled", given: context.Canceled, expect: ragplane.EUNAVAILABLE},
		{name: "statement timeout", given: pg(pgerr.QueryCanceled), expect: ragplane.EUNAVAILABLE},
		{name: "deadlock", given: pg(pgerr.DeadlockDetected), expect: ragplane.EUNAVAILABLE},
		{name: "serialization", given: pg(pgerr.SerializationFailure), expect: ragplane.EUNAVAILABLE},
		{name: "too many connections", given: pg(pgerr.TooManyConnections), expect: ragplane.EUNAVAILABLE},
		{name: "connection failure", given: pg("08006"), expect: ragplane.EUNAVAILABLE},
		{name: "other PostgreSQL error", given: pg("42P01"), expect: ragplane.EINTERNAL},
		{name: "other error", given: errors.New("boom"), expect: ragplane.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pgerr.Translate(tt.given, "catalog", "Tenant")
			if tt.expect == "" {
				if got != nil {
					t.Fatalf("Translate(nil) = %v", got)
				}
				return
			}
			if code := ragplane.ErrorCode(got); code != tt.expect {
				t.Fatalf("code = %q, want %q (err: %v)", code, tt.expect, got)
			}
			var re *ragplane.Error
			if errors.As(got, &re) && strings.Contains(re.Message, "hunter2") {
				t.Fatalf("message %q leaks the PostgreSQL message", re.Message)
			}
			if tt.expect == ragplane.EINTERNAL && !errors.Is(got, tt.given) {
				t.Fatalf("%v does not wrap %v", got, tt.given)
			}
		})
	}
}

func TestCode(t *testing.T) {
	if got := pgerr.Code(fmt.Errorf("x: %w", &pgconn.PgError{Code: pgerr.UniqueViolation})); got != pgerr.UniqueViolation {
		t.Fatalf("Code = %q", got)
	}
	if got := pgerr.Code(errors.New("x")); got != "" {
		t.Fatalf("Code(non-PostgreSQL error) = %q", got)
	}
}
