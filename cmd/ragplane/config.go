package main

import (
	"sort"

	"github.com/spf13/cobra"

	"github.com/ragplane/ragplane"
)

func newConfigCommand(cli *cliContext) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "config",
		Short:   "Show the system layer of the config cascade",
		Example: `  ragplane config defaults`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "defaults",
		Short: "Show the system defaults of every setting and limit, and which the operator overrode",
		Long: `Show the system layer: every setting and limit with its effective default, and whether it is
the built-in value or the operator's override (PUT /v1/config/defaults). Plans and tenants
override these in turn (see plans get, tenants config).`,
		Example: `  ragplane config defaults
  ragplane config defaults -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var d struct {
				Overrides ragplane.ConfigLayer `json:"overrides"`
				Effective ragplane.ConfigLayer `json:"effective"`
				Schema    struct {
					Settings []ragplane.FieldDoc `json:"settings"`
					Limits   []ragplane.FieldDoc `json:"limits"`
				} `json:"schema"`
			}
			if err := cli.call(cmd.Context(), "GET", "/v1/config/defaults", nil, &d); err != nil {
				return err
			}
			if cli.structured() {
				return cli.printData(d)
			}
			var rows [][]string
			for _, g := range []struct {
				kind       string
				eff, overr ragplane.Overrides
			}{{"setting", d.Effective.Settings, d.Overrides.Settings}, {"limit", d.Effective.Limits, d.Overrides.Limits}} {
				rows = append(rows, overrideRows(g.kind, g.eff, g.overr)...)
			}
			printTable([]string{"KIND", "KEY", "VALUE", "FROM"}, rows)
			return nil
		},
	})
	return cmd
}

// overrideRows lists a layer's keys, sorted, saying whether each is the operator's override.
func overrideRows(kind string, effective, overrides ragplane.Overrides) [][]string {
	keys := make([]string, 0, len(effective))
	for k := range effective {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([][]string, 0, len(keys))
	for _, k := range keys {
		from := "built-in"
		if _, ok := overrides[k]; ok {
			from = "override"
		}
		rows = append(rows, []string{kind, k, formatValue(effective[k]), from})
	}
	return rows
}

// printSourced prints a settings/limits map with where each value comes from.
func printSourced(groups ...sourcedGroup) {
	var rows [][]string
	for _, g := range groups {
		keys := make([]string, 0, len(g.m))
		for k := range g.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := g.m[k]
			src := string(v.Source)
			if src == "" {
				src = "-"
			}
			if v.Clamped {
				src += " (clamped)"
			}
			rows = append(rows, []string{g.kind, k, formatValue(v.Value), src})
		}
	}
	printTable([]string{"KIND", "KEY", "VALUE", "FROM"}, rows)
}

// sourcedGroup is one kind of sourced values: settings or limits.
type sourcedGroup struct {
	kind string
	m    map[string]ragplane.Sourced
}
