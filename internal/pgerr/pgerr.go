// Package pgerr translates PostgreSQL errors into ragplane error codes at an adapter's boundary,
// so that the catalog and the tenant-database adapters agree on what a caller can act on.
package pgerr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ragplane/ragplane"
)

// SQLSTATE codes the translation looks at
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	UniqueViolation           = "23505"
	CheckViolation            = "23514"
	NotNullViolation          = "23502"
	InvalidTextRepresentation = "22P02"
	SerializationFailure      = "40001"
	DeadlockDetected          = "40P01"
	QueryCanceled             = "57014" // statement_timeout and cancel requests
	CannotConnectNow          = "57P03"
	TooManyConnections        = "53300"
	connectionExceptionClass  = "08"
)

// Translate turns err into what a caller of an adapter can act on. source names the database in
// messages ("catalog", "tenant database"); what names the object ("Tenant", "API key").
//
//   - nil stays nil, and a *ragplane.Error passes through unchanged;
//   - pgx.ErrNoRows is ENOTFOUND ("<what> not found.");
//   - a unique violation is ECONFLICT ("<what> already exists.");
//   - a check or not-null violation or malformed input text is EINVALID;
//   - a timeout or cancellation (context deadline or cancel, pgconn.Timeout, query_canceled), a connection failure, too many
//     connections, a server not accepting connections, a serialization failure or a deadlock is
//     EUNAVAILABLE: retrying may succeed;
//   - anything else is wrapped with %w as "<source>: <what>: ...", for the log only.
//
// Messages of the ragplane errors name only source and what: never SQL text, values or secrets.
func Translate(err error, source, what string) error {
	if err == nil {
		return nil
	}
	var re *ragplane.Error
	if errors.As(err, &re) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ragplane.Errorf(ragplane.ENOTFOUND, "%s not found.", what)
	}
	if pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "The %s did not answer in time.", source)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch c := pgErr.Code; {
		case c == UniqueViolation:
			return ragplane.Errorf(ragplane.ECONFLICT, "%s already exists.", what)
		case c == CheckViolation, c == NotNullViolation, c == InvalidTextRepresentation:
			return ragplane.Errorf(ragplane.EINVALID, "%s is not valid.", what)
		case c == QueryCanceled:
			return ragplane.Errorf(ragplane.EUNAVAILABLE, "The %s did not answer in time.", source)
		case c == SerializationFailure, c == DeadlockDetected:
			return ragplane.Errorf(ragplane.EUNAVAILABLE, "The %s is busy; retry.", source)
		case c == TooManyConnections, c == CannotConnectNow, strings.HasPrefix(c, connectionExceptionClass):
			return ragplane.Errorf(ragplane.EUNAVAILABLE, "The %s is unavailable; retry shortly.", source)
		}
		return fmt.Errorf("%s: %s: %w", source, what, err)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "The %s is unavailable; retry shortly.", source)
	}
	return fmt.Errorf("%s: %s: %w", source, what, err)
}

// Code returns the SQLSTATE of err, or "" when err is not a PostgreSQL error.
func Code(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
