// Package pgerr translates PostgreSQL errors into ragplane error codes at an adapter's boundary,
// so that the catalog and the tenant-database adapters agree on what a caller can act on.
package pgerr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

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
	AdminShutdown             = "57P01" // pg_terminate_backend, smart or fast shutdown
	CrashShutdown             = "57P02" // another backend crashed; the server is restarting
	InvalidCatalogName        = "3D000" // the database does not exist (dropped: an offloaded tenant)
	CannotConnectNow          = "57P03" // starting up or shutting down
	IdleSessionTimeout        = "57P05"
	TooManyConnections        = "53300"
	// TenantMoved is raised by a tenant database the tenant has moved out of (tier moves: see
	// catalog/tenantdb/migrations/009_tenant_seals.sql): its catalog entry names the new one.
	TenantMoved              = "RPM01"
	connectionExceptionClass = "08"
)

// Translate turns err into what a caller of an adapter can act on. source names the database in
// messages ("catalog", "tenant database"); what names the object ("Tenant", "API key").
//
//   - nil stays nil, and a *ragplane.Error passes through unchanged;
//   - pgx.ErrNoRows is ENOTFOUND ("<what> not found.");
//   - a unique violation is ECONFLICT ("<what> already exists.");
//   - a check or not-null violation or malformed input text is EINVALID;
//   - a timeout or cancellation (context deadline or cancel, pgconn.Timeout, query_canceled), a
//     serialization failure or a deadlock is EUNAVAILABLE: retrying may succeed;
//   - a lost or refused connection is EUNAVAILABLE too (see Unavailable), whatever the server said
//     while refusing it: a database that does not accept connections right now is the platform's
//     trouble, not the caller's;
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
	if Moved(err) {
		return fmt.Errorf("%w (%w)", ragplane.Errorf(ragplane.EUNAVAILABLE, "The tenant's data is moving to another database; retry shortly."), err)
	}
	if Unavailable(err) {
		// The cause stays in the chain for the log (problem.Write logs every 5xx); the client sees
		// only the message, never SQL, host names or connection strings.
		return fmt.Errorf("%w (%w)", ragplane.Errorf(ragplane.EUNAVAILABLE, "The %s is unavailable; retry shortly.", source), err)
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
		}
	}
	return fmt.Errorf("%s: %s: %w", source, what, err)
}

// Unavailable reports whether err means the database could not be reached or the connection was
// lost, so that the same request may succeed on another connection a moment later:
//
//   - a failed connection attempt (*pgconn.ConnectError), whatever the server answered: too many
//     connections, starting up, a database that does not allow connections;
//   - an error pgconn marks safe to retry (nothing reached the server);
//   - a connection the driver has closed (pgconn.ErrConnClosed), or one dropped under it: EOF,
//     unexpected EOF, connection refused, reset or a broken pipe, any other network error;
//   - SQLSTATE class 08 (connection exception), 57P01 admin_shutdown (pg_terminate_backend),
//     57P02 crash_shutdown, 57P03 cannot_connect_now, 57P05 idle_session_timeout, 53300
//     too_many_connections and RPM01, a database the tenant has moved out of (the next attempt
//     reads the tenant's new database from the catalog).
func Unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch c := pgErr.Code; {
		case c == AdminShutdown, c == CrashShutdown, c == CannotConnectNow, c == IdleSessionTimeout,
			c == TooManyConnections, c == TenantMoved, strings.HasPrefix(c, connectionExceptionClass):
			return true
		}
		// Any other server error is about the statement, unless it ended a connection attempt.
		var ce *pgconn.ConnectError
		return errors.As(err, &ce)
	}
	var ce *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) || errors.As(err, &netErr)
}

// FromDriver reports whether err comes from pgx or pgconn: it carries a server error, a failed
// connection attempt, a closed connection, or one of pgconn's own errors (which say whether they
// are safe to retry). A transport's error renderer uses it with Unavailable to answer a database
// error that reached it untranslated as what it is, without taking every EOF for a database's.
func FromDriver(err error) bool {
	var pgErr *pgconn.PgError
	var ce *pgconn.ConnectError
	var retry interface{ SafeToRetry() bool }
	return errors.As(err, &pgErr) || errors.As(err, &ce) || errors.As(err, &retry) || errors.Is(err, pgconn.ErrConnClosed)
}

// Moved reports whether err is a tenant database's refusal of a tenant that has moved to another
// database (TenantMoved): the tenant's catalog entry must be read again.
func Moved(err error) bool { return Code(err) == TenantMoved }

// Code returns the SQLSTATE of err, or "" when err is not a PostgreSQL error.
func Code(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
