package dataplane

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ragplane/ragplane"
)

// dbError translates tenant-database errors at the boundary: no rows -> ENOTFOUND, overload and
// timeouts -> EUNAVAILABLE; *ragplane.Error passes through; anything else is internal.
func dbError(err error) error {
	var re *ragplane.Error
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return err
	case errors.Is(err, pgx.ErrNoRows):
		return ragplane.Errorf(ragplane.ENOTFOUND, "Document not found.")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "The tenant's database did not answer in time.")
	case errors.As(err, &pgErr) && (pgErr.Code == "53300" || pgErr.Code == "57P03" || strings.HasPrefix(pgErr.Code, "08")):
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "The tenant's database is unavailable; retry shortly.")
	}
	return fmt.Errorf("tenant database: %w", err)
}
