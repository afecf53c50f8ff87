package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ragplane/ragplane"
)

func newTenantsUpdateCommand(cli *cliContext) *cobra.Command {
	var name, plan string
	var limits, settings, unsetLimits, unsetSettings []string
	cmd := &cobra.Command{
		Use:   "update ID",
		Short: "Change a tenant's name or plan, or its own limit and setting overrides",
		Long: `Change a tenant's name or plan, and set or remove the tenant's own overrides of limits and
settings (the tenant layer of the config cascade: see tenants config). A value is read as JSON
when it parses (numbers, true/false, quoted strings, lists), else as a plain string. The
tenant's effective config must still resolve, or nothing changes.`,
		Example: `  ragplane tenants update acme_corp --plan enterprise
  ragplane tenants update acme_corp --limit queries_per_hour=20000 --setting retrieval_mode=hybrid
  ragplane tenants update acme_corp --unset-limit queries_per_hour --name "Acme Corporation"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			if cmd.Flags().Changed("name") {
				body["name"] = name
			}
			if cmd.Flags().Changed("plan") {
				body["plan"] = plan
			}
			for _, g := range []struct {
				field       string
				flag        string
				set, remove []string
			}{{"limits", "limit", limits, unsetLimits}, {"settings", "setting", settings, unsetSettings}} {
				m, err := overridesFromFlags(g.flag, g.set, g.remove)
				if err != nil {
					return usageError(err)
				}
				if len(m) > 0 {
					body[g.field] = m
				}
			}
			if len(body) == 0 {
				return usageError(fmt.Errorf("nothing to change: give --name, --plan, --limit, --setting, --unset-limit or --unset-setting"))
			}
			var t ragplane.Tenant
			if err := cli.call(cmd.Context(), "PATCH", "/v1/tenants/"+url.PathEscape(args[0]), body, &t); err != nil {
				return err
			}
			return cli.printTenants(t)
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "new display name")
	f.StringVar(&plan, "plan", "", "move the tenant to this plan")
	f.StringArrayVar(&limits, "limit", nil, "KEY=VALUE: override a limit for this tenant (repeatable)")
	f.StringArrayVar(&settings, "setting", nil, "KEY=VALUE: override a setting for this tenant (repeatable)")
	f.StringArrayVar(&unsetLimits, "unset-limit", nil, "KEY: remove the tenant's override of a limit (repeatable)")
	f.StringArrayVar(&unsetSettings, "unset-setting", nil, "KEY: remove the tenant's override of a setting (repeatable)")
	return cmd
}

// overridesFromFlags turns KEY=VALUE pairs and keys to remove (sent as null) into overrides.
func overridesFromFlags(flag string, set, remove []string) (map[string]any, error) {
	m := map[string]any{}
	for _, kv := range set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--%s %q: want KEY=VALUE", flag, kv)
		}
		var parsed any
		if err := json.Unmarshal([]byte(v), &parsed); err != nil || parsed == nil {
			parsed = v
		}
		m[strings.TrimSpace(k)] = parsed
	}
	for _, k := range remove {
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--%s and --unset-%s both name %s", flag, flag, k)
		}
		m[k] = nil
	}
	return m, nil
}
