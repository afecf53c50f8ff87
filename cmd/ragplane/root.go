package main

import (
	"context"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/internal/tracing"
	"github.com/ragplane/ragplane/proxy"
)

// newRootCommand wires the service subcommands and the operator CLI. getenv is the only way
// commands read the environment.
func newRootCommand(logger *slog.Logger, getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:   "ragplane",
		Short: "Ragplane: a multi-tenant RAG platform (services and operator CLI)",
		Long: `Ragplane: a multi-tenant RAG platform in one binary. The services run as the subcommands
controlplane, proxy and dataplane; every other command is the operator CLI. Admin commands talk
to the admin API ($RAGPLANE_ADMIN_URL, $RAGPLANE_ADMIN_TOKEN); tenant commands (ingest, query,
documents, me) go through the proxy ($RAGPLANE_API_URL) with $RAGPLANE_TOKEN or $RAGPLANE_API_KEY.

Read commands print a table, or -o json / -o yaml for scripts (--json is -o json).

` + exitCodesHelp,
		Example: `  export RAGPLANE_ADMIN_URL=http://127.0.0.1:8081 RAGPLANE_ADMIN_TOKEN=...
  ragplane tenants list -o yaml
  ragplane tenants get acme_corp; echo "exit code $?"`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cli := &cliContext{getenv: getenv}
	root.PersistentFlags().StringVar(&cli.adminURL, "admin-url", "", "admin API base URL (default $RAGPLANE_ADMIN_URL or http://127.0.0.1:8081)")
	root.PersistentFlags().BoolVar(&cli.json, "json", false, "print JSON for scripts instead of tables (same as -o json)")
	root.PersistentFlags().StringVarP(&cli.output, "output", "o", "", "output format of read commands: table, json or yaml (default table)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return cli.validateOutput() }

	root.AddCommand(&cobra.Command{
		Use:   "controlplane",
		Short: "Run the control plane (admin API, reconciler, token issuer)",
		Example: `  DATABASE_URL=postgres://... RAGPLANE_ADMIN_TOKEN=... RAGPLANE_SECRET_KEY=... RAGPLANE_INTERNAL_KEY=... \
    ragplane controlplane`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := controlplane.ConfigFromEnv(getenv)
			if err != nil {
				return err
			}
			shutdown, err := tracing.Setup(cmd.Context(), "ragplane-controlplane", getenv)
			if err != nil {
				return err
			}
			defer shutdown(context.WithoutCancel(cmd.Context()))
			return controlplane.Run(cmd.Context(), cfg, logger)
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "dataplane",
		Short: "Run a data-plane worker (ingestion, retrieval, answers)",
		Example: `  DATABASE_URL=postgres://... RAGPLANE_SECRET_KEY=... RAGPLANE_INTERNAL_KEY=... \
    RAGPLANE_CONTROLPLANE_URL=http://127.0.0.1:8081 ragplane dataplane`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := dataplane.ConfigFromEnv(getenv)
			if err != nil {
				return err
			}
			shutdown, err := tracing.Setup(cmd.Context(), "ragplane-dataplane", getenv)
			if err != nil {
				return err
			}
			defer shutdown(context.WithoutCancel(cmd.Context()))
			return dataplane.Run(cmd.Context(), cfg, logger)
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "proxy",
		Short: "Run the tenant-aware proxy (JWT, rate limits, concurrency caps, routing to workers)",
		Example: `  REDIS_URL=redis://127.0.0.1:6379 RAGPLANE_INTERNAL_KEY=... RAGPLANE_XDS_ADDR=127.0.0.1:18000 \
    ragplane proxy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := proxy.ConfigFromEnv(getenv)
			if err != nil {
				return err
			}
			shutdown, err := tracing.Setup(cmd.Context(), "ragplane-proxy", getenv)
			if err != nil {
				return err
			}
			defer shutdown(context.WithoutCancel(cmd.Context()))
			return proxy.Run(cmd.Context(), cfg, logger)
		},
	})
	root.AddCommand(newTenantsCommand(cli), newKeysCommand(cli), newTokenCommand(cli), newPlansCommand(cli), newAuditCommand(cli), newIngestCommand(cli), newQueryCommand(cli), newUsageCommand(cli), newReembedCommand(logger, getenv),
		newVersionCommand(cli), newConfigCommand(cli), newDocumentsCommand(cli), newMeCommand(cli))
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	addBuiltinExamples(root)
	markRunErrors(root)
	return root
}
