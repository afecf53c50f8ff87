package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragplane/ragplane"
)

func newKeysCommand(cli *cliContext) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Create, list and revoke tenant API keys"}
	var name string
	var roles []string
	createCmd := &cobra.Command{
		Use: "create TENANT", Short: "Create an API key (its secret is shown once)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var k struct {
				Key string `json:"key"`
				ragplane.APIKey
			}
			body := map[string]any{"name": name}
			if len(roles) > 0 {
				body["roles"] = roles
			}
			if err := cli.call(cmd.Context(), "POST", "/v1/tenants/"+url.PathEscape(args[0])+"/keys", body, &k); err != nil {
				return err
			}
			if cli.json {
				return printJSON(k)
			}
			fmt.Fprintln(os.Stderr, "Store this key now: it is not shown again.")
			fmt.Println(k.Key)
			return nil
		},
	}
	createCmd.Flags().StringVar(&name, "name", "default", "a label for the key")
	createCmd.Flags().StringSliceVar(&roles, "role", nil, "roles its tokens may carry (reader, writer, admin); default reader,writer")

	listCmd := &cobra.Command{
		Use: "list TENANT", Short: "List a tenant's API keys", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p struct {
				Items []ragplane.APIKey `json:"items"`
			}
			if err := cli.call(cmd.Context(), "GET", "/v1/tenants/"+url.PathEscape(args[0])+"/keys", nil, &p); err != nil {
				return err
			}
			if cli.json {
				return printJSON(p.Items)
			}
			rows := make([][]string, 0, len(p.Items))
			for _, k := range p.Items {
				state := "active"
				if k.RevokedAt != nil {
					state = "revoked " + k.RevokedAt.Format(time.RFC3339)
				} else if k.ExpiresAt != nil && k.ExpiresAt.Before(time.Now()) {
					state = "expired"
				}
				rows = append(rows, []string{k.ID, k.Name, "rpk_" + k.Prefix + "_…", strings.Join(k.Roles, ","),
					k.CreatedAt.Format(time.RFC3339), state})
			}
			printTable([]string{"ID", "NAME", "PREFIX", "ROLES", "CREATED", "STATE"}, rows)
			return nil
		},
	}

	revokeCmd := &cobra.Command{
		Use: "revoke TENANT KEY_ID", Short: "Revoke an API key", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var k ragplane.APIKey
			if err := cli.call(cmd.Context(), "DELETE", "/v1/tenants/"+url.PathEscape(args[0])+"/keys/"+url.PathEscape(args[1]), nil, &k); err != nil {
				return err
			}
			if cli.json {
				return printJSON(k)
			}
			fmt.Printf("revoked key %s (%s)\n", k.ID, k.Name)
			return nil
		},
	}
	cmd.AddCommand(createCmd, listCmd, revokeCmd)
	return cmd
}

func newTokenCommand(cli *cliContext) *cobra.Command {
	var user string
	var roles []string
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Exchange a tenant API key ($RAGPLANE_API_KEY) for a short-lived access token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key := cli.getenv("RAGPLANE_API_KEY")
			if key == "" {
				return fmt.Errorf("set RAGPLANE_API_KEY to the tenant's API key")
			}
			body := map[string]any{}
			if user != "" {
				body["user"] = user
			}
			if len(roles) > 0 {
				body["roles"] = roles
			}
			// The token endpoint authenticates with the API key, not the admin token.
			apiCli := &cliContext{adminURL: cli.baseURL(), json: cli.json, getenv: func(k string) string {
				if k == "RAGPLANE_ADMIN_TOKEN" {
					return ""
				}
				return cli.getenv(k)
			}}
			var tok struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				ExpiresIn   int    `json:"expires_in"`
			}
			if err := apiCli.call(cmd.Context(), "POST", "/v1/auth/token", body, &tok, "Authorization", "Bearer "+key); err != nil {
				return err
			}
			if cli.json {
				return printJSON(tok)
			}
			fmt.Println(tok.AccessToken)
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "the user inside the tenant (the token's subject)")
	cmd.Flags().StringSliceVar(&roles, "role", nil, "roles to request (a subset of the key's)")
	return cmd
}

func newPlansCommand(cli *cliContext) *cobra.Command {
	cmd := &cobra.Command{Use: "plans", Short: "Show plans"}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List plans", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p struct {
				Items []ragplane.Plan `json:"items"`
			}
			if err := cli.call(cmd.Context(), "GET", "/v1/plans", nil, &p); err != nil {
				return err
			}
			if cli.json {
				return printJSON(p.Items)
			}
			rows := make([][]string, 0, len(p.Items))
			for _, pl := range p.Items {
				rows = append(rows, []string{pl.Name, formatValue(pl.Limits["queries_per_hour"]),
					formatValue(pl.Limits["requests_per_second"]), formatValue(pl.Limits["max_documents"]), pl.Description})
			}
			printTable([]string{"PLAN", "QUERIES/H", "REQ/S", "MAX DOCS", "DESCRIPTION"}, rows)
			return nil
		},
	})
	return cmd
}

func newAuditCommand(cli *cliContext) *cobra.Command {
	var target, action string
	var limit int
	cmd := &cobra.Command{
		Use: "audit", Short: "Show the audit log, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			if target != "" {
				q.Set("target", target)
			}
			if action != "" {
				q.Set("action", action)
			}
			var p struct {
				Items []ragplane.AuditEntry `json:"items"`
			}
			if err := cli.call(cmd.Context(), "GET", "/v1/audit?"+q.Encode(), nil, &p); err != nil {
				return err
			}
			if cli.json {
				return printJSON(p.Items)
			}
			rows := make([][]string, 0, len(p.Items))
			for _, e := range p.Items {
				rows = append(rows, []string{e.At.Format(time.RFC3339), e.Actor, e.Action, e.Target})
			}
			printTable([]string{"AT", "ACTOR", "ACTION", "TARGET"}, rows)
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "only entries about this target, e.g. tenant/acme_corp")
	cmd.Flags().StringVar(&action, "action", "", "only this action, e.g. tenant.create")
	cmd.Flags().IntVar(&limit, "limit", 50, "how many entries")
	return cmd
}

func newUsageCommand(cli *cliContext) *cobra.Command {
	var hours int
	return func() *cobra.Command {
		cmd := &cobra.Command{
			Use: "usage TENANT...", Short: "Show tenants' usage and estimated cost over a window", Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var rows [][]string
				var all []any
				for _, t := range args {
					var m struct {
						Summary struct {
							Total      int     `json:"total_queries"`
							Successful int     `json:"successful_queries"`
							Avg        float64 `json:"avg_latency_ms"`
							P95        float64 `json:"p95_latency_ms"`
							Prompt     int64   `json:"prompt_tokens"`
							Completion int64   `json:"completion_tokens"`
							Embedding  int64   `json:"embedding_tokens"`
						} `json:"summary"`
						Cost float64 `json:"estimated_cost"`
					}
					if err := cli.call(cmd.Context(), "GET", fmt.Sprintf("/v1/metrics/%s?hours=%d", url.PathEscape(t), hours), nil, &m); err != nil {
						return err
					}
					all = append(all, m)
					s := m.Summary
					rows = append(rows, []string{t, fmt.Sprint(s.Total), fmt.Sprint(s.Successful), fmt.Sprintf("%.0f", s.Avg),
						fmt.Sprintf("%.0f", s.P95), fmt.Sprint(s.Prompt + s.Completion), fmt.Sprint(s.Embedding), fmt.Sprintf("%.4f", m.Cost)})
				}
				if cli.json {
					return printJSON(all)
				}
				printTable([]string{"TENANT", "QUERIES", "OK", "AVG MS", "P95 MS", "LLM TOKENS", "EMBED TOKENS", "EST. COST"}, rows)
				return nil
			},
		}
		cmd.Flags().IntVar(&hours, "hours", 24, "window in hours")
		return cmd
	}()
}
