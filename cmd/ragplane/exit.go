package main

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/spf13/cobra"
)

// Exit codes of the CLI, documented in the root help and README.
const (
	exitOK          = 0
	exitOther       = 1 // anything not below
	exitUsage       = 2 // bad command line, or a request the API rejected as invalid (400, 413, 415, 422)
	exitAuth        = 3 // not authenticated or not allowed (401, 403), or no credentials set
	exitNotFound    = 4 // 404
	exitConflict    = 5 // 409, 412
	exitUnavailable = 6 // 5xx, 429, the server unreachable, a --wait that timed out; worth retrying later
)

// exitCodesHelp is the root help's table of exit codes.
const exitCodesHelp = `Exit codes:
  0  success
  1  any other failure
  2  usage: a bad command line, or a request the API rejected as invalid (400, 413, 415, 422)
  3  authentication or permission: 401, 403, or no credentials set
  4  not found: 404
  5  conflict: 409 (e.g. a tenant being deleted, an Idempotency-Key reused)
  6  server error or unavailable: 5xx, 429, the server unreachable, or --wait timed out (retry later)`

// runError marks an error returned by a command's own code, as opposed to one from cobra
// (parsing flags and arguments), which is a usage error.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// codedError is a failure of a command with a given exit code.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// credentialsError says no credentials were set: exit 3.
func credentialsError(err error) error { return &codedError{code: exitAuth, err: err} }

// usageError says the command line was wrong in a way cobra does not check: exit 2.
func usageError(err error) error { return &codedError{code: exitUsage, err: err} }

// markRunErrors wraps the RunE of every command under c, so exitCode can tell a command's own
// failure from cobra's usage errors.
// A group of commands (tenants, keys ...) shows its help, and an unknown subcommand of it is a
// usage error rather than help and success.
func markRunErrors(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = cobra.NoArgs
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return &runError{err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markRunErrors(sub)
	}
}

// exitCode maps an error of Execute to the process's exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var re *runError
	if !errors.As(err, &re) {
		return exitUsage // cobra: unknown command or flag, wrong arguments, missing required flags, -o
	}
	return classify(err)
}

// classify maps a command's own failure to an exit code.
func classify(err error) int {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	var ae *apiError
	if errors.As(err, &ae) {
		switch s := ae.Status; {
		case s == http.StatusUnauthorized || s == http.StatusForbidden:
			return exitAuth
		case s == http.StatusNotFound:
			return exitNotFound
		case s == http.StatusConflict || s == http.StatusPreconditionFailed:
			return exitConflict
		case s == http.StatusTooManyRequests || s >= 500:
			return exitUnavailable
		case s == http.StatusBadRequest || s == http.StatusRequestEntityTooLarge || s == http.StatusUnsupportedMediaType ||
			s == http.StatusUnprocessableEntity:
			return exitUsage
		}
		return exitOther
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return exitUnavailable
	}
	return exitOther
}
