package main

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragplane/ragplane"
)

func newKeysCommand(cli *cliContext) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Create, list, rotate and revoke tenant API keys",
		Example: `  ragplane keys create acme_corp --name ci --expires-in 720h
  ragplane keys list acme_corp
  ragplane keys rotate acme_corp KEY_ID`}
	var name string
	var roles []string
	var exp expiryFlags
	createCmd := &cobra.Command{
		Use: "create TENANT", Short: "Create an API key (its secret is shown once)", Args: cobra.ExactArgs(1),
		Example: `  ragplane keys create acme_corp --name ci
  ragplane keys create acme_corp --name dashboard --role reader --expires-in 2160h
  ragplane keys create acme_corp --name batch --expires-at 2027-01-01T00:00:00Z -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			expiresAt, err := exp.expiry()
			if err != nil {
				return usageError(err)
			}
			k, err := createKey(cmd, cli, args[0], name, roles, expiresAt)
			if err != nil {
				return err
			}
			if cli.structured() {
				return cli.printData(k)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Store this key now: it is not shown again.")
			fmt.Println(k.Key)
			return nil
		},
	}
	createCmd.Flags().StringVar(&name, "name", "default", "a label for the key")
	createCmd.Flags().StringSliceVar(&roles, "role", nil, "roles its tokens may carry (reader, writer, admin); default reader,writer")
	exp.register(createCmd)

	listCmd := &cobra.Command{
		Use: "list TENANT", Short: "List a tenant's API keys", Args: cobra.ExactArgs(1),
		Example: `  ragplane keys list acme_corp
  ragplane keys list acme_corp -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var p struct {
				Items []ragplane.APIKey `json:"items"`
			}
			if err := cli.call(cmd.Context(), "GET", "/v1/tenants/"+url.PathEscape(args[0])+"/keys", nil, &p); err != nil {
				return err
			}
			if cli.structured() {
				return cli.printData(p.Items)
			}
			rows := make([][]string, 0, len(p.Items))
			for _, k := range p.Items {
				state := "active"
				if k.RevokedAt != nil {
					state = "revoked " + k.RevokedAt.Format(time.RFC3339)
				} else if k.ExpiresAt != nil && k.ExpiresAt.Before(time.Now()) {
					state = "expired"
				}
				expires := "never"
				if k.ExpiresAt != nil {
					expires = k.ExpiresAt.Format(time.RFC3339)
				}
				rows = append(rows, []string{k.ID, k.Name, "rpk_" + k.Prefix + "_…", strings.Join(k.Roles, ","),
					k.CreatedAt.Format(time.RFC3339), expires, state})
			}
			printTable([]string{"ID", "NAME", "PREFIX", "ROLES", "CREATED", "EXPIRES", "STATE"}, rows)
			return nil
		},
	}

	revokeCmd := &cobra.Command{
		Use: "revoke TENANT KEY_ID", Short: "Revoke an API key (and the tokens it minted)", Args: cobra.ExactArgs(2),
		Example: `  ragplane keys revoke acme_corp 6f1c2a9e-...`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var k ragplane.APIKey
			if err := cli.call(cmd.Context(), "DELETE", "/v1/tenants/"+url.PathEscape(args[0])+"/keys/"+url.PathEscape(args[1]), nil, &k); err != nil {
				return err
			}
			if cli.structured() {
				return cli.printData(k)
			}
			fmt.Printf("revoked key %s (%s)\n", k.ID, k.Name)
			return nil
		},
	}
	cmd.AddCommand(createCmd, listCmd, newKeysRotateCommand(cli), revokeCmd)
	return cmd
}

func newTokenCommand(cli *cliContext) *cobra.Command {
	var user string
	var roles []string
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Exchange a tenant API key ($RAGPLANE_API_KEY) for a short-lived access token",
		Example: `  RAGPLANE_API_KEY=rpk_... ragplane token --user alice@acme.example
  export RAGPLANE_TOKEN=$(RAGPLANE_API_KEY=rpk_... ragplane token --role reader)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key := cli.getenv("RAGPLANE_API_KEY")
			if key == "" {
				return credentialsError(fmt.Errorf("set RAGPLANE_API_KEY to the tenant's API key"))
			}
			body := map[string]any{}
			if user != "" {
				body["user"] = user
			}
			if len(roles) > 0 {
				body["roles"] = roles
			}
			// The token endpoint authenticates with the API key, not the admin token.
			apiCli := &cliContext{adminURL: cli.baseURL(), json: cli.json, output: cli.output, getenv: func(k string) string {
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
			if cli.structured() {
				return cli.printData(tok)
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
	cmd := &cobra.Command{Use: "plans", Short: "Show plans", Example: `  ragplane plans list
  ragplane plans get pro`}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List plans", Args: cobra.NoArgs,
		Example: `  ragplane plans list
  ragplane plans list -o yaml`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p struct {
				Items []ragplane.Plan `json:"items"`
			}
			if err := cli.call(cmd.Context(), "GET", "/v1/plans", nil, &p); err != nil {
				return err
			}
			if cli.structured() {
				return cli.printData(p.Items)
			}
			rows := make([][]string, 0, len(p.Items))
			for _, pl := range p.Items {
				rows = append(rows, []string{pl.Name, formatValue(pl.Limits["queries_per_hour"]),
					formatValue(pl.Limits["requests_per_second"]), formatValue(pl.Limits["max_documents"]), pl.Description})
			}
			printTable([]string{"PLAN", "QUERIES/H", "REQ/S", "MAX DOCS", "DESCRIPTION"}, rows)
			return nil
		},
	}, &cobra.Command{
		Use: "get NAME", Short: "Show a plan: its description and the limits and settings it overrides", Args: cobra.ExactArgs(1),
		Example: `  ragplane plans get pro
  ragplane plans get enterprise -o json | jq .limits`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var pl ragplane.Plan
			if err := cli.call(cmd.Context(), "GET", "/v1/plans/"+url.PathEscape(args[0]), nil, &pl); err != nil {
				return err
			}
			if cli.structured() {
				return cli.printData(pl)
			}
			fmt.Printf("plan %s: %s\n", pl.Name, pl.Description)
			rows := overrideRows("limit", pl.Limits, nil)
			rows = append(overrideRows("setting", pl.Settings, nil), rows...)
			for _, r := range rows {
				r[3] = "plan"
			}
			printTable([]string{"KIND", "KEY", "VALUE", "FROM"}, rows)
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
		Example: `  ragplane audit --target tenant/acme_corp
  ragplane audit --action key.revoke --limit 10 -o json`,
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
			if cli.structured() {
				return cli.printData(p.Items)
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
