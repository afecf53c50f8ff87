package main

import (
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragplane/ragplane"
)

// expiryFlags set when a new API key expires: --expires-in or --expires-at.
type expiryFlags struct {
	in time.Duration
	at string
}

func (e *expiryFlags) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&e.in, "expires-in", 0, "the key expires this long from now, e.g. 720h (default: never)")
	cmd.Flags().StringVar(&e.at, "expires-at", "", "the key expires at this RFC 3339 time, e.g. 2027-01-01T00:00:00Z")
	cmd.MarkFlagsMutuallyExclusive("expires-in", "expires-at")
}

// at is the expiry asked for, nil for none.
func (e *expiryFlags) expiry() (*time.Time, error) {
	switch {
	case e.in < 0:
		return nil, fmt.Errorf("--expires-in %s: must be positive", e.in)
	case e.in > 0:
		t := time.Now().Add(e.in).UTC().Truncate(time.Second)
		return &t, nil
	case e.at != "":
		t, err := time.Parse(time.RFC3339, e.at)
		if err != nil {
			return nil, fmt.Errorf("--expires-at %q: want an RFC 3339 time like 2027-01-01T00:00:00Z", e.at)
		}
		return &t, nil
	}
	return nil, nil
}

// newKey is a created API key with its secret.
type newKey struct {
	Key string `json:"key"`
	ragplane.APIKey
}

func createKey(cmd *cobra.Command, cli *cliContext, tenant, name string, roles []string, expiresAt *time.Time) (newKey, error) {
	var k newKey
	body := map[string]any{"name": name}
	if len(roles) > 0 {
		body["roles"] = roles
	}
	if expiresAt != nil {
		body["expires_at"] = expiresAt.Format(time.RFC3339)
	}
	err := cli.call(cmd.Context(), "POST", "/v1/tenants/"+url.PathEscape(tenant)+"/keys", body, &k)
	return k, err
}

func newKeysRotateCommand(cli *cliContext) *cobra.Command {
	var keepOld bool
	var exp expiryFlags
	cmd := &cobra.Command{
		Use:   "rotate TENANT KEY_ID",
		Short: "Replace an API key: a new key with the same name and roles, then the old one revoked",
		Long: `Replace an API key: create a new key with the old one's name and roles (and the expiry asked
for), print its secret once, then revoke the old key and the tokens it minted. With
--keep-old the old key stays valid, so clients can move over before you revoke it with
keys revoke. An old key that is already revoked cannot be rotated (409).`,
		Example: `  ragplane keys rotate acme_corp 6f1c2a9e-... > new-key.txt
  ragplane keys rotate acme_corp 6f1c2a9e-... --expires-in 2160h --keep-old -o json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			tenant, oldID := args[0], args[1]
			expiresAt, err := exp.expiry()
			if err != nil {
				return usageError(err)
			}
			var p struct {
				Items []ragplane.APIKey `json:"items"`
			}
			if err := cli.call(cmd.Context(), "GET", "/v1/tenants/"+url.PathEscape(tenant)+"/keys", nil, &p); err != nil {
				return err
			}
			var old *ragplane.APIKey
			for i := range p.Items {
				if p.Items[i].ID == oldID {
					old = &p.Items[i]
				}
			}
			if old == nil {
				return &apiError{Status: 404, Code: ragplane.ENOTFOUND, Detail: fmt.Sprintf("Tenant %s has no API key %s.", tenant, oldID)}
			}
			if old.RevokedAt != nil {
				return &apiError{Status: 409, Code: ragplane.ECONFLICT, Detail: fmt.Sprintf("API key %s is already revoked.", oldID)}
			}
			k, err := createKey(cmd, cli, tenant, old.Name, old.Roles, expiresAt)
			if err != nil {
				return err
			}
			result := struct {
				newKey
				Replaces string           `json:"replaces"`
				Revoked  *ragplane.APIKey `json:"revoked,omitempty"`
			}{newKey: k, Replaces: oldID}
			if !keepOld {
				var revoked ragplane.APIKey
				if err := cli.call(cmd.Context(), "DELETE", "/v1/tenants/"+url.PathEscape(tenant)+"/keys/"+url.PathEscape(oldID), nil, &revoked); err != nil {
					// The new key exists: show it, so it is not lost, and say the old one is still valid.
					fmt.Fprintf(cmd.ErrOrStderr(), "New key %s created, but revoking %s failed; revoke it with: ragplane keys revoke %s %s\n", k.ID, oldID, tenant, oldID)
					fmt.Println(k.Key)
					return err
				}
				result.Revoked = &revoked
			}
			if cli.structured() {
				return cli.printData(result)
			}
			if keepOld {
				fmt.Fprintf(cmd.ErrOrStderr(), "New key %s replaces %s, which stays valid until you revoke it. Store this key now: it is not shown again.\n", k.ID, oldID)
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "New key %s replaces %s, now revoked. Store this key now: it is not shown again.\n", k.ID, oldID)
			}
			fmt.Println(k.Key)
			return nil
		},
	}
	cmd.Flags().BoolVar(&keepOld, "keep-old", false, "do not revoke the old key yet")
	exp.register(cmd)
	return cmd
}
