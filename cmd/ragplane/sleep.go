package main

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragplane/ragplane/catalog"
)

// tenantActivity is GET /v1/tenants/{id}/activity and the answer of POST /v1/tenants/{id}/wake.
type tenantActivity struct {
	TenantID  string           `json:"tenant_id"`
	IdleSince *time.Time       `json:"idle_since"`
	State     string           `json:"state"`
	Offload   *catalog.Offload `json:"offload"`
}

// asleep reports whether the tenant's data is not in its database yet: being written to an
// archive, in the archive, or being restored from it.
func (a *tenantActivity) asleep() bool {
	switch a.State {
	case "offloading", "offloaded", "restoring":
		return true
	}
	return false
}

// sleepHelp is what the activity and wake commands' help says about idle and offloaded tenants.
const sleepHelp = `A tenant unused for RAGPLANE_IDLE_AFTER is marked idle. With RAGPLANE_OFFLOAD_AFTER set, an
active siloed tenant idle that long more is offloaded: its rows are written to an archive in
RAGPLANE_OFFLOAD_DIR and its database is dropped. Its next request (or an export, a move, or
"tenants wake") asks for a restore, which the control plane runs in the background.

States: awake, idle, offloading (its archive is being written), offloaded (the archive is its
only copy), restoring (a restore was asked for and has not ended yet).`

// newTenantsActivityCommand shows whether a tenant is idle and its offload to an archive, if any.
func newTenantsActivityCommand(cli *cliContext) *cobra.Command {
	return &cobra.Command{
		Use: "activity ID", Short: "Show whether a tenant is idle, offloaded to an archive or being restored", Args: cobra.ExactArgs(1),
		Long: sleepHelp,
		Example: `  ragplane tenants activity acme_corp
  ragplane tenants activity acme_corp -o json | jq .offload.archive_bytes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var a tenantActivity
			if err := cli.call(cmd.Context(), "GET", "/v1/tenants/"+url.PathEscape(args[0])+"/activity", nil, &a); err != nil {
				return err
			}
			return cli.printActivity(a)
		},
	}
}

// newTenantsWakeCommand wakes an idle tenant, or asks for an offloaded tenant's restore and, with
// --wait, waits until the restore has ended.
func newTenantsWakeCommand(cli *cliContext) *cobra.Command {
	var wait time.Duration
	c := &cobra.Command{
		Use: "wake ID", Short: "Wake an idle tenant, or restore an offloaded one", Args: cobra.ExactArgs(1),
		Long: sleepHelp + `

"tenants wake" marks an idle tenant awake at once, so it is not offloaded before its next use.
For an offloaded tenant it asks for the restore and returns (state restoring); --wait waits
until the restore has ended, and fails (exit 6) naming the state and the last error if it has
not ended in time. Only an active or suspended tenant can be woken (exit 5 otherwise).`,
		Example: `  ragplane tenants wake acme_corp
  ragplane tenants wake acme_corp --wait 5m
  ragplane tenants wake acme_corp --wait 5m -o json | jq .state`,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/tenants/" + url.PathEscape(args[0])
			var a tenantActivity
			if err := cli.call(cmd.Context(), "POST", path+"/wake", nil, &a); err != nil {
				return err
			}
			if a.asleep() && wait > 0 {
				if err := waitRestored(cmd, cli, path+"/activity", wait, &a); err != nil {
					return err
				}
			} else if a.asleep() {
				fmt.Fprintf(cmd.ErrOrStderr(), "restore of tenant %s asked for: follow it with `ragplane tenants activity %s` (or wake --wait)\n",
					a.TenantID, a.TenantID)
			}
			return cli.printActivity(a)
		},
	}
	c.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for an offloaded tenant's restore to end")
	return c
}

// waitRestored polls the tenant's activity (path) until its data is back in its database or the
// timeout passes. It says on stderr what it waits for, and each state the tenant passes through.
func waitRestored(cmd *cobra.Command, cli *cliContext, path string, timeout time.Duration, a *tenantActivity) error {
	start := time.Now()
	deadline := start.Add(timeout)
	stderr := cmd.ErrOrStderr()
	fmt.Fprintf(stderr, "waiting up to %s for tenant %s to be restored\n", timeout, a.TenantID)
	last := ""
	for {
		if a.State != last {
			fmt.Fprintf(stderr, "  %5.1fs  tenant %s is %s\n", time.Since(start).Seconds(), a.TenantID, a.State)
			last = a.State
		}
		if !a.asleep() {
			return nil
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("tenant %s is still %s after %s", a.TenantID, a.State, timeout)
			if a.Offload != nil && a.Offload.LastError != "" {
				err = fmt.Errorf("tenant %s is still %s after %s (%d failed attempts, last error: %s)",
					a.TenantID, a.State, timeout, a.Offload.Attempts, a.Offload.LastError)
			}
			return &codedError{code: exitUnavailable, err: err}
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(200 * time.Millisecond):
		}
		// Decode into a fresh value: a field the answer omits (the offload once it has ended)
		// must not keep its previous value.
		var next tenantActivity
		if err := cli.call(cmd.Context(), "GET", path, nil, &next); err != nil {
			return err
		}
		*a = next
	}
}

// printActivity prints a tenant's activity: an object with -o json or yaml, else one table row.
func (c *cliContext) printActivity(a tenantActivity) error {
	if c.structured() {
		return c.printData(a)
	}
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	archive, offloaded, restore, lastErr := "-", "-", "-", "-"
	if o := a.Offload; o != nil {
		if o.Archive != "" {
			archive = strconv.FormatInt(o.Bytes, 10)
		}
		offloaded, restore, lastErr = at(o.OffloadedAt), at(o.RestoreRequestedAt), orDash(o.LastError)
	}
	printTable([]string{"TENANT", "STATE", "IDLE SINCE", "ARCHIVE BYTES", "OFFLOADED", "RESTORE ASKED", "LAST ERROR"},
		[][]string{{a.TenantID, a.State, at(a.IdleSince), archive, offloaded, restore, lastErr}})
	return nil
}
