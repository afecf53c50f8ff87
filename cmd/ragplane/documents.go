package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragplane/ragplane"
)

// tenantFlags are the flags of commands that call the tenant API: through the proxy by default,
// or straight to a worker as an operator.
type tenantFlags struct {
	worker bool
	tenant string
}

func (f *tenantFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.worker, "worker", false, "operator tool: go straight to $RAGPLANE_WORKER_URL, signing with $RAGPLANE_INTERNAL_KEY")
	cmd.Flags().StringVar(&f.tenant, "tenant", "", "with --worker: the tenant id")
}

func newDocumentsCommand(cli *cliContext) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "documents",
		Short: "List, show and delete a tenant's documents through the proxy ($RAGPLANE_TOKEN or $RAGPLANE_API_KEY)",
		Example: `  RAGPLANE_API_KEY=rpk_... ragplane documents list
  ragplane documents get 0b5c...`,
	}

	var lf tenantFlags
	var limit int
	var all bool
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List documents, newest first",
		Example: `  ragplane documents list
  ragplane documents list --all -o json | jq -r '.[].id'
  ragplane documents list --worker --tenant acme_corp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w, err := newDataClient(cmd.Context(), cli, lf.worker, lf.tenant)
			if err != nil {
				return err
			}
			docs := []ragplane.Document{}
			cursor := ""
			for {
				q := url.Values{"limit": {strconv.Itoa(limit)}}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				var p struct {
					Items      []ragplane.Document `json:"items"`
					NextCursor string              `json:"next_cursor"`
				}
				if err := w.do(cmd.Context(), "GET", "/v1/documents?"+q.Encode(), "", nil, &p); err != nil {
					return err
				}
				docs = append(docs, p.Items...)
				if cursor = p.NextCursor; cursor == "" || !all {
					break
				}
			}
			if cli.structured() {
				return cli.printData(docs)
			}
			rows := make([][]string, 0, len(docs))
			for _, d := range docs {
				rows = append(rows, []string{d.ID, d.Title, d.Source, strconv.Itoa(d.ChunkCount), d.Status, d.CreatedAt.Format(time.RFC3339)})
			}
			printTable([]string{"ID", "TITLE", "SOURCE", "CHUNKS", "STATUS", "CREATED"}, rows)
			return nil
		},
	}
	lf.register(listCmd)
	listCmd.Flags().IntVar(&limit, "limit", 50, "page size (1-200)")
	listCmd.Flags().BoolVar(&all, "all", false, "follow cursors to list every document")

	var gf tenantFlags
	var content bool
	getCmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a document",
		Example: `  ragplane documents get 0b5c7d1e-...
  ragplane documents get 0b5c7d1e-... --content
  ragplane documents get 0b5c7d1e-... -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := newDataClient(cmd.Context(), cli, gf.worker, gf.tenant)
			if err != nil {
				return err
			}
			var d ragplane.Document
			if err := w.do(cmd.Context(), "GET", "/v1/documents/"+url.PathEscape(args[0]), "", nil, &d); err != nil {
				return err
			}
			if cli.structured() {
				return cli.printData(d)
			}
			printTable([]string{"ID", "TITLE", "SOURCE", "CHUNKS", "BYTES", "LANGUAGE", "STATUS", "CREATED"},
				[][]string{{d.ID, d.Title, d.Source, strconv.Itoa(d.ChunkCount), strconv.FormatInt(d.Bytes, 10), d.Language, d.Status,
					d.CreatedAt.Format(time.RFC3339)}})
			if content {
				fmt.Println()
				fmt.Println(d.Content)
			}
			return nil
		},
	}
	gf.register(getCmd)
	getCmd.Flags().BoolVar(&content, "content", false, "print the document's text under the table")

	var df tenantFlags
	deleteCmd := &cobra.Command{
		Use:     "delete ID...",
		Short:   "Delete documents with their chunks and graph facts",
		Example: `  ragplane documents delete 0b5c7d1e-... 9f2a...`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := newDataClient(cmd.Context(), cli, df.worker, df.tenant)
			if err != nil {
				return err
			}
			for _, id := range args {
				var discard json.RawMessage
				if err := w.do(cmd.Context(), "DELETE", "/v1/documents/"+url.PathEscape(id), "", nil, &discard); err != nil {
					return fmt.Errorf("%s: %w", id, err)
				}
				if !cli.structured() {
					fmt.Printf("deleted document %s\n", id)
				}
			}
			if cli.structured() {
				return cli.printData(map[string]any{"deleted": args})
			}
			return nil
		},
	}
	df.register(deleteCmd)

	cmd.AddCommand(listCmd, getCmd, deleteCmd)
	return cmd
}

// meResponse is GET /v1/me on the proxy: who the token is, its tenant's settings and limits
// with their layers, and what is used and left.
type meResponse struct {
	TenantID  string                      `json:"tenant_id"`
	Plan      string                      `json:"plan"`
	Subject   string                      `json:"subject"`
	Roles     []string                    `json:"roles"`
	Settings  map[string]ragplane.Sourced `json:"settings"`
	Limits    map[string]ragplane.Sourced `json:"limits"`
	Used      map[string]any              `json:"used"`
	Remaining map[string]any              `json:"remaining"`
}

func newMeCommand(cli *cliContext) *cobra.Command {
	var f tenantFlags
	cmd := &cobra.Command{
		Use:   "me",
		Short: "Show the calling tenant: plan, effective settings (with their layer), limits, what is used and what remains",
		Example: `  RAGPLANE_API_URL=http://127.0.0.1:8080 RAGPLANE_API_KEY=rpk_... ragplane me
  RAGPLANE_TOKEN=eyJ... ragplane me -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w, err := newDataClient(cmd.Context(), cli, f.worker, f.tenant)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := w.do(cmd.Context(), "GET", "/v1/me", "", nil, &raw); err != nil {
				return err
			}
			if cli.structured() {
				var v any
				if err := json.Unmarshal(raw, &v); err != nil {
					return err
				}
				return cli.printData(v)
			}
			var me meResponse
			if err := json.Unmarshal(raw, &me); err != nil {
				return fmt.Errorf("GET /v1/me: unexpected answer: %w", err)
			}
			fmt.Printf("tenant %s, plan %s (%s, roles %s)\n", me.TenantID, me.Plan, me.Subject, strings.Join(me.Roles, ","))
			plain := func(m map[string]any) map[string]ragplane.Sourced {
				out := make(map[string]ragplane.Sourced, len(m))
				for k, v := range m {
					if v == nil {
						v = "unknown" // queries_this_hour when the proxy did not apply the hourly limit
					}
					out[k] = ragplane.Sourced{Value: v}
				}
				return out
			}
			printSourced(sourcedGroup{"setting", me.Settings}, sourcedGroup{"limit", me.Limits},
				sourcedGroup{"used", plain(me.Used)}, sourcedGroup{"remaining", plain(me.Remaining)})
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
