package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

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
		{name: "connection does not exist", given: pg("08003"), expect: ragplane.EUNAVAILABLE},
		{name: "terminated by the administrator", given: pg(pgerr.AdminShutdown), expect: ragplane.EUNAVAILABLE},
		{name: "crash shutdown", given: pg(pgerr.CrashShutdown), expect: ragplane.EUNAVAILABLE},
		{name: "cannot connect now", given: pg(pgerr.CannotConnectNow), expect: ragplane.EUNAVAILABLE},
		{name: "idle session timeout", given: pg(pgerr.IdleSessionTimeout), expect: ragplane.EUNAVAILABLE},
		{name: "driver closed the connection", given: fmt.Errorf("exec: %w", pgconn.ErrConnClosed), expect: ragplane.EUNAVAILABLE},
		{name: "unexpected EOF", given: fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), expect: ragplane.EUNAVAILABLE},
		{name: "EOF", given: fmt.Errorf("read: %w", io.EOF), expect: ragplane.EUNAVAILABLE},
		{name: "connection reset", given: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, expect: ragplane.EUNAVAILABLE},
		{name: "broken pipe", given: fmt.Errorf("write: %w", syscall.EPIPE), expect: ragplane.EUNAVAILABLE},
		{name: "connection refused", given: fmt.Errorf("dial: %w", syscall.ECONNREFUSED), expect: ragplane.EUNAVAILABLE},
		{name: "safe to retry", given: fmt.Errorf("send: %w", safeToRetry{}), expect: ragplane.EUNAVAILABLE},
		{name: "an object not in prerequisite state outside a connection attempt", given: pg("55000"), expect: ragplane.EINTERNAL},
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
			if strings.HasSuffix(ragplane.ErrorMessage(got), "is unavailable; retry shortly.") && !errors.Is(got, tt.given) {
				t.Fatalf("%v does not keep its cause %v for the log", got, tt.given)
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

func TestFromDriver(t *testing.T) {
	tests := []struct {
		name   string
		given  error
		expect bool
	}{
		{name: "server error", given: fmt.Errorf("x: %w", &pgconn.PgError{Code: pgerr.AdminShutdown}), expect: true},
		{name: "closed connection", given: fmt.Errorf("x: %w", pgconn.ErrConnClosed), expect: true},
		{name: "pgconn error", given: fmt.Errorf("x: %w", safeToRetry{}), expect: true},
		{name: "a bare EOF", given: io.EOF, expect: false},
		{name: "another error", given: errors.New("boom"), expect: false},
		{name: "nil", given: nil, expect: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pgerr.FromDriver(tt.given); got != tt.expect {
				t.Fatalf("FromDriver(%v) = %v, want %v", tt.given, got, tt.expect)
			}
		})
	}
}

// safeToRetry is an error pgconn.SafeToRetry accepts, as pgconn's own errors from before anything
// was sent.
type safeToRetry struct{}

func (safeToRetry) Error() string     { return "nothing was sent" }
func (safeToRetry) SafeToRetry() bool { return true }

// The errors the driver itself returns when a database cannot be reached or drops a connection are
// EUNAVAILABLE, and their messages name neither the host nor the database nor the user.
func TestTranslateDriverErrors(t *testing.T) {
	tests := []struct {
		name  string
		given func(t *testing.T) error
	}{
		{name: "connection refused", given: func(t *testing.T) error {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			_, err = pgconn.Connect(context.Background(), "postgres://secret_user:hunter2@"+addr+"/secret_db?sslmode=disable")
			return err
		}},
		{name: "database refuses connections", given: func(t *testing.T) error {
			addr := MustFakeServer(t, func(be *pgproto3.Backend) {
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "55000",
					Message: `database "secret_db" is not currently accepting connections`})
			})
			_, err := pgconn.Connect(context.Background(), "postgres://secret_user:hunter2@"+addr+"/secret_db?sslmode=disable")
			return err
		}},
		{name: "too many connections", given: func(t *testing.T) error {
			addr := MustFakeServer(t, func(be *pgproto3.Backend) {
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: pgerr.TooManyConnections,
					Message: "sorry, too many clients already"})
			})
			_, err := pgconn.Connect(context.Background(), "postgres://secret_user:hunter2@"+addr+"/secret_db?sslmode=disable")
			return err
		}},
		{name: "connection dropped mid-query", given: func(t *testing.T) error {
			return MustQueryFakeServer(t, func(be *pgproto3.Backend) {})
		}},
		{name: "backend terminated mid-query", given: func(t *testing.T) error {
			return MustQueryFakeServer(t, func(be *pgproto3.Backend) {
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: pgerr.AdminShutdown,
					Message: "terminating connection due to administrator command"})
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			given := tt.given(t)
			if given == nil {
				t.Fatal("no error")
			}
			got := pgerr.Translate(given, "tenant database", "Document")
			if code := ragplane.ErrorCode(got); code != ragplane.EUNAVAILABLE {
				t.Fatalf("code = %q, want %q (err: %v)", code, ragplane.EUNAVAILABLE, got)
			}
			for _, secret := range []string{"secret_user", "secret_db", "hunter2", "127.0.0.1", "select"} {
				if msg := ragplane.ErrorMessage(got); strings.Contains(msg, secret) {
					t.Fatalf("message %q leaks %q", msg, secret)
				}
			}
			if !errors.Is(got, given) {
				t.Fatalf("%v does not keep its cause for the log", got)
			}
			if !pgerr.FromDriver(given) || !pgerr.Unavailable(given) {
				t.Fatalf("FromDriver = %v, Unavailable = %v for %v; want both", pgerr.FromDriver(given), pgerr.Unavailable(given), given)
			}
		})
	}
}

// MustFakeServer serves one PostgreSQL connection on loopback: it reads the startup message, lets
// answer reply, and closes the connection. It returns the server's address.
func MustFakeServer(tb testing.TB, answer func(*pgproto3.Backend)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	tb.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		be := pgproto3.NewBackend(conn, conn)
		if _, err := be.ReceiveStartupMessage(); err != nil {
			return
		}
		answer(be)
		_ = be.Flush()
	}()
	return ln.Addr().String()
}

// MustQueryFakeServer connects to a fake server that accepts the connection, waits for a query and
// lets answer reply before it closes the connection; it returns the query's error.
func MustQueryFakeServer(tb testing.TB, answer func(*pgproto3.Backend)) error {
	tb.Helper()
	addr := MustFakeServer(tb, func(be *pgproto3.Backend) {
		be.Send(&pgproto3.AuthenticationOk{})
		be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if err := be.Flush(); err != nil {
			return
		}
		if _, err := be.Receive(); err != nil {
			return
		}
		answer(be)
	})
	conn, err := pgconn.Connect(context.Background(), "postgres://secret_user:hunter2@"+addr+"/secret_db?sslmode=disable")
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), "select 1").ReadAll()
	return err
}
