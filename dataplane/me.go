package dataplane

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
)

// meResponse is GET /v1/me: the caller's tenant, its effective settings and limits with the
// layer each came from, and what is used and left right now.
type meResponse struct {
	TenantID      ragplane.TenantID           `json:"tenant_id"`
	Plan          string                      `json:"plan"`
	Status        ragplane.TenantStatus       `json:"status"`
	ConfigVersion int64                       `json:"config_version"`
	Subject       string                      `json:"subject"`
	Roles         []string                    `json:"roles"`
	Settings      map[string]ragplane.Sourced `json:"settings"`
	Limits        map[string]ragplane.Sourced `json:"limits"`
	Used          meUsed                      `json:"used"`
	Remaining     meRemaining                 `json:"remaining"`
}

// meUsed is what the tenant has used of its quotas.
type meUsed struct {
	// TokensThisMonth counts this calendar month's (UTC) shipped usage and the reservations of
	// queries in flight, as the monthly_tokens check does.
	TokensThisMonth int64 `json:"tokens_this_month"`
	Documents       int64 `json:"documents"`
	StorageBytes    int64 `json:"storage_bytes"`
}

// meRemaining is what is left: queries this hour from the proxy's admission of this very
// request (null when the proxy did not apply the hourly limit: Redis away and its fail policy
// not local_share), the rest from the quotas less meUsed, never below 0.
type meRemaining struct {
	QueriesThisHour *int  `json:"queries_this_hour"`
	TokensThisMonth int64 `json:"tokens_this_month"`
	Documents       int64 `json:"documents"`
	StorageBytes    int64 `json:"storage_bytes"`
}

// me answers GET /v1/me.
func (s *Server) me(c echo.Context) error {
	ctx := c.Request().Context()
	id, _ := ragplane.IdentityFromContext(ctx) // verifyContext put it there
	sc, err := s.open(ctx, nil)
	if err != nil {
		return err
	}
	defer sc.release()
	var used meUsed
	if err := sc.pool.QueryRow(ctx, `select count(*), coalesce(sum(bytes), 0)::bigint from documents`).Scan(&used.Documents, &used.StorageBytes); err != nil {
		return dbError(err)
	}
	utc := time.Now().UTC()
	if used.TokensThisMonth, err = s.store.TokensCounted(ctx, sc.tenant, time.Date(utc.Year(), utc.Month(), 1, 0, 0, 0, 0, time.UTC)); err != nil {
		return err
	}
	lim := sc.cfg.Limits
	left, _ := c.Get("queries_left").(*int)
	t := sc.rt.Tenant
	return c.JSON(http.StatusOK, meResponse{
		TenantID: t.ID, Plan: t.Plan, Status: t.Status, ConfigVersion: t.ConfigVersion, Subject: id.Subject, Roles: id.Roles,
		Settings: sc.cfg.SettingSources, Limits: sc.cfg.LimitSources, Used: used,
		Remaining: meRemaining{
			QueriesThisHour: left,
			TokensThisMonth: max(0, int64(lim.MonthlyTokens)-used.TokensThisMonth),
			Documents:       max(0, int64(lim.MaxDocuments)-used.Documents),
			StorageBytes:    max(0, int64(lim.MaxStorageMB)<<20-used.StorageBytes),
		},
	})
}
