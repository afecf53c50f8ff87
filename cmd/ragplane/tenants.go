package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane"
)

func newTenantsCommand(cli *cliContext) *cobra.Command {
	cmd := &cobra.Command{Use: "tenants", Short: "Create, list and manage tenants",
		Example: `  ragplane tenants create --id acme_corp --name "Acme Corp" --email ops@acme.example --plan pro --wait 1m
  ragplane tenants list -o yaml
  ragplane tenants update acme_corp --plan enterprise --limit queries_per_hour=20000`}

	var create struct {
		id, name, email, plan, region, provider, idemKey string
		wait                                             time.Duration
	}
	createCmd := &cobra.Command{
		Use:   "create",
		Short: "Create a tenant (provisioned in the background; --wait to wait for it)",
		Example: `  ragplane tenants create --id acme_corp --name "Acme Corp" --email ops@acme.example
  ragplane tenants create --id acme_corp --name "Acme Corp" --email ops@acme.example --plan pro --wait 2m
  ragplane tenants create --id acme_corp --name "Acme Corp" --email ops@acme.example --idempotency-key req-42 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"id": create.id, "name": create.name, "email": create.email, "plan": create.plan}
			if create.region != "" {
				body["region"] = create.region
			}
			if create.provider != "" {
				body["provider"] = create.provider
			}
			var t ragplane.Tenant
			var headers []string
			if create.idemKey != "" {
				headers = []string{"Idempotency-Key", create.idemKey}
			}
			if err := cli.call(cmd.Context(), "POST", "/v1/tenants", body, &t, headers...); err != nil {
				return err
			}
			if create.wait > 0 {
				if err := waitForStatus(cmd, cli, t.ID, create.wait, &t, ragplane.StatusActive, ragplane.StatusFailed); err != nil {
					return err
				}
				if t.Status == ragplane.StatusFailed {
					return fmt.Errorf("tenant %s failed to provision: %s", t.ID, t.StatusReason)
				}
			}
			return cli.printTenants(t)
		},
	}
	f := createCmd.Flags()
	f.StringVar(&create.id, "id", "", "tenant id (slug: a-z, 0-9, _)")
	f.StringVar(&create.name, "name", "", "display name")
	f.StringVar(&create.email, "email", "", "billing contact email")
	f.StringVar(&create.plan, "plan", "free", "plan: free, pro, enterprise or an operator-defined plan")
	f.StringVar(&create.region, "region", "", "region (default: the control plane's)")
	f.StringVar(&create.provider, "provider", "", "local or neon (default: the control plane's)")
	f.StringVar(&create.idemKey, "idempotency-key", "", "Idempotency-Key, to make retries safe")
	f.DurationVar(&create.wait, "wait", 0, "wait up to this long for the tenant to be active")
	for _, n := range []string{"id", "name", "email"} {
		_ = createCmd.MarkFlagRequired(n)
	}

	var list struct {
		status string
		all    bool
		limit  int
	}
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Example: `  ragplane tenants list
  ragplane tenants list --status suspended
  ragplane tenants list --all -o json | jq -r '.[].id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var all []ragplane.Tenant
			cursor := ""
			for {
				q := url.Values{"limit": {strconv.Itoa(list.limit)}}
				if list.status != "" {
					q.Set("status", list.status)
				}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				var p struct {
					Items      []ragplane.Tenant `json:"items"`
					NextCursor string            `json:"next_cursor"`
				}
				if err := cli.call(cmd.Context(), "GET", "/v1/tenants?"+q.Encode(), nil, &p); err != nil {
					return err
				}
				all = append(all, p.Items...)
				if cursor = p.NextCursor; cursor == "" || !list.all {
					break
				}
			}
			return cli.printTenantList(all)
		},
	}
	listCmd.Flags().StringVar(&list.status, "status", "", "only tenants with this status")
	listCmd.Flags().BoolVar(&list.all, "all", false, "follow cursors to list every tenant")
	listCmd.Flags().IntVar(&list.limit, "limit", 100, "page size")

	getCmd := &cobra.Command{
		Use: "get ID", Short: "Show a tenant", Args: cobra.ExactArgs(1),
		Example: `  ragplane tenants get acme_corp
  ragplane tenants get acme_corp -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var t ragplane.Tenant
			if err := cli.call(cmd.Context(), "GET", "/v1/tenants/"+url.PathEscape(args[0]), nil, &t); err != nil {
				return err
			}
			return cli.printTenants(t)
		},
	}

	var reason string
	var wait time.Duration
	action := func(use, short, method, suffix, example string) *cobra.Command {
		c := &cobra.Command{
			Use: use + " ID", Short: short, Args: cobra.ExactArgs(1), Example: example,
			RunE: func(cmd *cobra.Command, args []string) error {
				var body any
				if reason != "" {
					body = map[string]string{"reason": reason}
				}
				var t ragplane.Tenant
				if err := cli.call(cmd.Context(), method, "/v1/tenants/"+url.PathEscape(args[0])+suffix, body, &t); err != nil {
					return err
				}
				if use == "delete" && wait > 0 {
					if err := waitForStatus(cmd, cli, t.ID, wait, &t, ragplane.StatusDeleted); err != nil {
						return err
					}
				}
				return cli.printTenants(t)
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (recorded on the tenant and in the audit log)")
		if use == "delete" {
			c.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the database to be gone")
		}
		return c
	}

	configCmd := &cobra.Command{
		Use: "config ID", Short: "Show a tenant's effective config and where each value comes from", Args: cobra.ExactArgs(1),
		Example: `  ragplane tenants config acme_corp
  ragplane tenants config acme_corp -o json | jq .settings.top_k`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg struct {
				TenantID      string                      `json:"tenant_id"`
				Plan          string                      `json:"plan"`
				ConfigVersion int64                       `json:"config_version"`
				Settings      map[string]ragplane.Sourced `json:"settings"`
				Limits        map[string]ragplane.Sourced `json:"limits"`
			}
			if err := cli.call(cmd.Context(), "GET", "/v1/tenants/"+url.PathEscape(args[0])+"/config", nil, &cfg); err != nil {
				return err
			}
			if cli.structured() {
				return cli.printData(cfg)
			}
			fmt.Printf("tenant %s, plan %s, config version %d\n", cfg.TenantID, cfg.Plan, cfg.ConfigVersion)
			printSourced(sourcedGroup{"setting", cfg.Settings}, sourcedGroup{"limit", cfg.Limits})
			return nil
		},
	}

	cmd.AddCommand(createCmd, listCmd, getCmd, newTenantsUpdateCommand(cli),
		action("suspend", "Suspend a tenant (its requests are refused)", "POST", "/suspend",
			`  ragplane tenants suspend acme_corp --reason "invoice 2026-11 unpaid"`),
		action("resume", "Resume a suspended tenant", "POST", "/resume", `  ragplane tenants resume acme_corp`),
		action("delete", "Delete a tenant: drops its database, revokes its keys", "DELETE", "",
			`  ragplane tenants delete acme_corp --reason "contract ended" --wait 2m`),
		configCmd, newTenantsTierCommand(cli), newTenantsActivityCommand(cli), newTenantsWakeCommand(cli))
	return cmd
}

// tenantTier is GET /v1/tenants/{id}/move.
type tenantTier struct {
	TenantID       string          `json:"tenant_id" yaml:"tenant_id"`
	Tier           string          `json:"tier" yaml:"tier"`
	ConfiguredTier string          `json:"configured_tier" yaml:"configured_tier"`
	Move           *map[string]any `json:"move" yaml:"move"`
}

// newTenantsTierCommand shows where a tenant's data is and its move between tiers, if any.
func newTenantsTierCommand(cli *cliContext) *cobra.Command {
	var wait time.Duration
	c := &cobra.Command{
		Use: "tier ID", Short: "Show a tenant's isolation tier and its move between tiers in progress", Args: cobra.ExactArgs(1),
		Long: `A change of plan or of the isolation_tier setting that puts a tenant in the other tier moves it
online: its rows are copied while it is served, its requests are held for a moment while the last
changes are copied, and its old copy is removed. --wait waits until the move is done.`,
		Example: `  ragplane tenants update acme_corp --plan free
  ragplane tenants tier acme_corp --wait 5m
  ragplane tenants tier acme_corp -o json | jq .move.state`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var t tenantTier
			deadline := time.Now().Add(wait)
			for {
				if err := cli.call(cmd.Context(), "GET", "/v1/tenants/"+url.PathEscape(args[0])+"/move", nil, &t); err != nil {
					return err
				}
				if t.Move == nil || wait <= 0 {
					break
				}
				if time.Now().After(deadline) {
					// A --wait that timed out: exit 6, as the root help documents.
					return &codedError{code: exitUnavailable, err: fmt.Errorf("tenant %s is still moving to the %s tier after %s", t.TenantID, t.ConfiguredTier, wait)}
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(500 * time.Millisecond):
				}
			}
			if cli.structured() {
				return cli.printData(t)
			}
			fmt.Printf("tenant %s: tier %s (configured: %s)\n", t.TenantID, t.Tier, t.ConfiguredTier)
			if t.Move != nil {
				m := *t.Move
				fmt.Printf("moving %v -> %v: %v since %v, attempts %v", m["from_tier"], m["to_tier"], m["state"], m["started_at"], m["attempts"])
				if e, _ := m["last_error"].(string); e != "" {
					fmt.Printf(", last error: %s", e)
				}
				fmt.Println()
			}
			return nil
		},
	}
	c.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for a move in progress to finish")
	return c
}

// waitForStatus polls a tenant until it reaches one of the statuses or the timeout passes.
// It says on stderr what it waits for, and each status the tenant passes through.
func waitForStatus(cmd *cobra.Command, cli *cliContext, id ragplane.TenantID, timeout time.Duration, t *ragplane.Tenant, want ...ragplane.TenantStatus) error {
	start := time.Now()
	deadline := start.Add(timeout)
	names := make([]string, len(want))
	for i, s := range want {
		names[i] = string(s)
	}
	stderr := cmd.ErrOrStderr()
	fmt.Fprintf(stderr, "waiting up to %s for tenant %s to be %s\n", timeout, id, strings.Join(names, " or "))
	last := ""
	for {
		if err := cli.call(cmd.Context(), "GET", "/v1/tenants/"+url.PathEscape(string(id)), nil, t); err != nil {
			return err
		}
		now := string(t.Status)
		if t.StatusReason != "" {
			now += " (" + t.StatusReason + ")"
		}
		if now != last {
			fmt.Fprintf(stderr, "  %5.1fs  tenant %s is %s\n", time.Since(start).Seconds(), id, now)
			last = now
		}
		for _, s := range want {
			if t.Status == s {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return &codedError{code: exitUnavailable, err: fmt.Errorf("tenant %s is still %s after %s", id, t.Status, timeout)}
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// printTenants prints one tenant: an object with --json.
func (c *cliContext) printTenants(t ragplane.Tenant) error {
	if c.structured() {
		return c.printData(t)
	}
	return c.printTenantList([]ragplane.Tenant{t})
}

// printTenantList prints tenants: always an array with --json.
func (c *cliContext) printTenantList(ts []ragplane.Tenant) error {
	if c.structured() {
		if ts == nil {
			ts = []ragplane.Tenant{}
		}
		return c.printData(ts)
	}
	rows := make([][]string, 0, len(ts))
	for _, t := range ts {
		status := string(t.Status)
		if t.StatusReason != "" {
			status += " (" + t.StatusReason + ")"
		}
		rows = append(rows, []string{string(t.ID), t.Name, t.Email, t.Plan, string(t.Provider), t.Region, status,
			t.CreatedAt.Format(time.RFC3339)})
	}
	printTable([]string{"ID", "NAME", "EMAIL", "PLAN", "PROVIDER", "REGION", "STATUS", "CREATED"}, rows)
	return nil
}

// newReembedCommand is the operator's way to move a tenant onto another embedding model.
func newReembedCommand(logger *slog.Logger, getenv func(string) string) *cobra.Command {
	var to dataplane.EmbeddingTarget
	cmd := &cobra.Command{
		Use:   "reembed TENANT --model MODEL --dimension N",
		Short: "Re-embed a tenant's chunks with another embedding model, online (runs here, with a worker's environment)",
		Long: `Re-embed a tenant's chunks with another embedding model. The tenant keeps serving with its
old model while every chunk gets a vector from the new one; then, in one short transaction, the
new vectors replace the old, and the catalog's embedding settings follow (audited as
tenant.reembed). Safe to run again after an interruption. Only a siloed tenant can be
re-embedded: a pooled tenant's pool has one embedding dimension for all its tenants, so it is
refused before anything is written (move it to the siloed tier first).

It runs in this process with a worker's environment (RAGPLANE_MODEL_DIR, the OpenAI settings,
RAGPLANE_SECRET_KEY), and DATABASE_URL must be the catalog with write access (the control
plane's).`,
		Example: `  ragplane reembed acme_corp --model glove-6b-100d-sif --dimension 100
  ragplane reembed acme_corp --provider openai --model text-embedding-3-small --dimension 1536`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := dataplane.ConfigFromEnv(getenv)
			if err != nil {
				return err
			}
			last := time.Now()
			progress := func(done, total int64) {
				if time.Since(last) > time.Second || done == total {
					last = time.Now()
					fmt.Fprintf(cmd.ErrOrStderr(), "re-embedded %d of %d chunks\n", done, total)
				}
			}
			if err := dataplane.Reembed(cmd.Context(), cfg, ragplane.TenantID(args[0]), to, progress, logger); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tenant %s now embeds with %s/%s (%d dimensions)\n", args[0], to.Provider, to.Model, to.Dimension)
			return nil
		},
	}
	cmd.Flags().StringVar(&to.Provider, "provider", "local", "embedding provider: local or openai")
	cmd.Flags().StringVar(&to.Model, "model", "", "embedding model (local: ragplane-hash-v1, glove-6b-100d-sif, use-lite-512)")
	cmd.Flags().IntVar(&to.Dimension, "dimension", 0, "the model's vector dimension")
	cmd.MarkFlagRequired("model")
	cmd.MarkFlagRequired("dimension")
	return cmd
}
