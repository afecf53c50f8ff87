package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is what `ragplane version` prints: from the binary's build information, never a
// hard-coded string.
type buildVersion struct {
	Module    string `json:"module"`
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	CommitAt  string `json:"commit_time,omitempty"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
}

// versionOf reads the main module's version and the VCS stamp (vcs.revision, vcs.time,
// vcs.modified) that go build records.
func versionOf(bi *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: "unknown", Commit: "unknown"}
	if bi == nil {
		return v
	}
	v.Module, v.GoVersion = bi.Main.Path, bi.GoVersion
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitAt = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func newVersionCommand(cli *cliContext) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit this binary was built from",
		Example: `  ragplane version
  ragplane version -o json | jq -r .commit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bi, _ := debug.ReadBuildInfo()
			v := versionOf(bi)
			if cli.structured() {
				return cli.printData(v)
			}
			commit := v.Commit
			if v.Modified {
				commit += " (modified)"
			}
			fmt.Printf("ragplane %s\ncommit   %s\n", v.Version, commit)
			if v.CommitAt != "" {
				fmt.Printf("built at %s\n", v.CommitAt)
			}
			fmt.Printf("go       %s\n", v.GoVersion)
			return nil
		},
	}
}

// addBuiltinExamples gives cobra's own commands (help, completion) examples like every other.
func addBuiltinExamples(root *cobra.Command) {
	examples := map[string]string{
		"help":                  "  ragplane help tenants create",
		"completion":            "  source <(ragplane completion bash)",
		"completion bash":       "  ragplane completion bash > /etc/bash_completion.d/ragplane",
		"completion zsh":        "  ragplane completion zsh > \"${fpath[1]}/_ragplane\"",
		"completion fish":       "  ragplane completion fish > ~/.config/fish/completions/ragplane.fish",
		"completion powershell": "  ragplane completion powershell | Out-String | Invoke-Expression",
	}
	for _, c := range root.Commands() {
		for _, cc := range append([]*cobra.Command{c}, c.Commands()...) {
			name := cc.Name()
			if cc != c {
				name = c.Name() + " " + name
			}
			if ex, ok := examples[name]; ok && cc.Example == "" {
				cc.Example = ex
			}
		}
	}
}
