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
		Use:           "ragplane",
		Short:         "Ragplane: a multi-tenant RAG platform (services and operator CLI)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cli := &cliContext{getenv: getenv}
	root.PersistentFlags().StringVar(&cli.adminURL, "admin-url", "", "admin API base URL (default $RAGPLANE_ADMIN_URL or http://127.0.0.1:8081)")
	root.PersistentFlags().BoolVar(&cli.json, "json", false, "print JSON for scripts instead of tables")

	root.AddCommand(&cobra.Command{
		Use:   "controlplane",
		Short: "Run the control plane (admin API, reconciler, token issuer)",
		Args:  cobra.NoArgs,
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
		Args:  cobra.NoArgs,
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
		Args:  cobra.NoArgs,
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
	root.AddCommand(newTenantsCommand(cli), newKeysCommand(cli), newTokenCommand(cli), newPlansCommand(cli), newAuditCommand(cli), newIngestCommand(cli), newQueryCommand(cli), newUsageCommand(cli), newReembedCommand(logger, getenv))
	return root
}
