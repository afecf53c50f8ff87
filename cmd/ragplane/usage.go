package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/spf13/cobra"
)

// usageRow is one tenant's line of `usage`: its metrics (GET /v1/metrics/{tenant_id}, the
// compliance seed's shape), or why there are none.
type usageRow struct {
	TenantID    string  `json:"tenant_id"`
	WindowHours int     `json:"time_window_hours,omitempty"`
	Total       *int    `json:"total_queries,omitempty"`
	Successful  int     `json:"successful_queries,omitempty"`
	AvgLatency  float64 `json:"avg_latency_ms,omitempty"`
	Costs       *struct {
		TotalTokens   int64   `json:"total_tokens"`
		Cost          float64 `json:"estimated_llm_cost"`
		TotalRequests int     `json:"total_requests"`
		SuccessRate   float64 `json:"success_rate"`
	} `json:"costs,omitempty"`
	Error *apiError `json:"error,omitempty"`
}

func newUsageCommand(cli *cliContext) *cobra.Command {
	var hours int
	cmd := &cobra.Command{
		Use:   "usage TENANT...",
		Short: "Show tenants' usage and estimated cost over a window",
		Long: `Show tenants' usage and estimated cost over the last --hours. Every row names its tenant
(tenant_id in -o json/yaml). A tenant that cannot be shown (unknown, say) does not stop the
others: its row carries the error, the error goes to stderr, and the exit code is that of the
first failure (4 for an unknown tenant).`,
		Example: `  ragplane usage acme_corp globex --hours 168
  ragplane usage acme_corp -o json | jq '.[] | {tenant_id, cost: .costs.estimated_llm_cost}'
  ragplane usage export --month 2026-11 > usage-2026-11.csv`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rows := make([]usageRow, 0, len(args))
			var table [][]string
			var first error
			for _, t := range args {
				r := usageRow{TenantID: t}
				err := cli.call(cmd.Context(), "GET", fmt.Sprintf("/v1/metrics/%s?hours=%d", url.PathEscape(t), hours), nil, &r)
				r.TenantID = t
				if err != nil {
					var ae *apiError
					if !errors.As(err, &ae) {
						return err // the admin API is not there: the other tenants would fail alike
					}
					r.Error, r.Total, r.Costs = ae, nil, nil
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", t, err)
					if first == nil {
						first = fmt.Errorf("%s: %w", t, err)
					}
					rows = append(rows, r)
					continue
				}
				rows = append(rows, r)
				if r.Total == nil || r.Costs == nil {
					continue
				}
				table = append(table, []string{t, fmt.Sprint(*r.Total), fmt.Sprint(r.Successful), fmt.Sprintf("%.0f", r.AvgLatency),
					fmt.Sprint(r.Costs.TotalRequests), fmt.Sprint(r.Costs.TotalTokens), fmt.Sprintf("%.4f", r.Costs.Cost)})
			}
			if cli.structured() {
				if err := cli.printData(rows); err != nil {
					return err
				}
			} else {
				printTable([]string{"TENANT", "QUERIES", "OK", "AVG MS", "REQUESTS", "TOKENS", "EST. COST"}, table)
			}
			return first
		},
	}
	cmd.Flags().IntVar(&hours, "hours", 24, "window in hours")
	cmd.AddCommand(newUsageExportCommand(cli))
	return cmd
}

func newUsageExportCommand(cli *cliContext) *cobra.Command {
	var month, tenant, file string
	cmd := &cobra.Command{
		Use:   "export --month YYYY-MM",
		Short: "Export every usage record of a month as CSV, for billing",
		Long: `Export every usage record of a calendar month (UTC) as CSV, one line per request, for billing:
id, tenant_id, subject, route, retrieval_mode, model, the token counts, documents and chunks
written, latency_ms, status, request_id, at. Record ids are stable, so a later export of the
same month reconciles with an earlier one.`,
		Example: `  ragplane usage export --month 2026-11 > usage-2026-11.csv
  ragplane usage export --month 2026-11 --tenant acme_corp --file acme-2026-11.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"month": {month}}
			if tenant != "" {
				q.Set("tenant", tenant)
			}
			var out io.Writer = os.Stdout
			if file != "" {
				f, err := os.Create(file)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
			}
			return cli.stream(cmd.Context(), "/v1/usage/export?"+q.Encode(), out)
		},
	}
	cmd.Flags().StringVar(&month, "month", "", "the month, e.g. 2026-11 (required)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's records")
	cmd.Flags().StringVar(&file, "file", "", "write the CSV here instead of stdout")
	_ = cmd.MarkFlagRequired("month")
	return cmd
}

// stream GETs path from the admin API and copies a successful answer's body to out as it comes.
func (c *cliContext) stream(ctx context.Context, path string, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.baseURL()+path, nil)
	if err != nil {
		return err
	}
	if tok := c.getenv("RAGPLANE_ADMIN_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.baseURL(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return problemOf(resp)
	}
	_, err = io.Copy(out, resp.Body)
	return err
}
