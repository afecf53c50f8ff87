package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

// dataClient sends a tenant API request and decodes the answer.
type dataClient interface {
	do(ctx context.Context, method, path, contentType string, body []byte, out any) error
}

// proxyClient calls the tenant API through the proxy with a tenant access token: RAGPLANE_TOKEN,
// or one obtained from the control plane for RAGPLANE_API_KEY.
type proxyClient struct {
	base  string
	token string
}

func newDataClient(ctx context.Context, cli *cliContext, worker bool, tenant string) (dataClient, error) {
	if worker {
		return newWorkerClient(cli, tenant)
	}
	base := cli.getenv("RAGPLANE_API_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	tok := cli.getenv("RAGPLANE_TOKEN")
	if tok == "" {
		key := cli.getenv("RAGPLANE_API_KEY")
		if key == "" {
			return nil, credentialsError(fmt.Errorf("set RAGPLANE_TOKEN (an access token) or RAGPLANE_API_KEY (a tenant API key)"))
		}
		// The key is exchanged on the same base URL: the proxy forwards POST /v1/auth/token to
		// the control plane.
		apiCli := &cliContext{adminURL: base, getenv: func(k string) string {
			if k == "RAGPLANE_ADMIN_TOKEN" {
				return ""
			}
			return cli.getenv(k)
		}}
		var t struct {
			AccessToken string `json:"access_token"`
		}
		if err := apiCli.call(ctx, "POST", "/v1/auth/token", nil, &t, "Authorization", "Bearer "+key); err != nil {
			return nil, err
		}
		tok = t.AccessToken
	}
	return &proxyClient{base: strings.TrimRight(base, "/"), token: tok}, nil
}

func (p *proxyClient) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+p.token)
	return send(req, p.base, out)
}

// send performs req and decodes a JSON answer or a problem.
func send(req *http.Request, base string, out any) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		return problemFrom(resp.StatusCode, data)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil // 204 and friends
	}
	return json.Unmarshal(data, out)
}

// problemOf reads an error answer's problem+json body.
func problemOf(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return problemFrom(resp.StatusCode, data)
}

// problemFrom decodes a problem+json body; anything else becomes the detail.
func problemFrom(status int, data []byte) error {
	e := &apiError{Status: status}
	if json.Unmarshal(data, e) != nil || e.Code == "" {
		e.Code, e.Detail = "error", strings.TrimSpace(string(data))
	}
	return e
}

// workerClient talks straight to a data-plane worker, signing the tenant context with the
// internal key as the proxy would. It is an operator's tool (the key is the proxy's secret);
// tenants go through the proxy with their own tokens.
type workerClient struct {
	base   string
	tenant ragplane.TenantID
	codec  *tenantctx.Codec
}

func newWorkerClient(cli *cliContext, tenant string) (*workerClient, error) {
	base := cli.getenv("RAGPLANE_WORKER_URL")
	if base == "" {
		base = "http://127.0.0.1:8090"
	}
	codec, err := tenantctx.New(cli.getenv("RAGPLANE_INTERNAL_KEY"))
	if err != nil {
		return nil, credentialsError(fmt.Errorf("set RAGPLANE_INTERNAL_KEY to the workers' internal key: %w", err))
	}
	id := ragplane.TenantID(tenant)
	if err := id.Validate(); err != nil {
		return nil, usageError(fmt.Errorf("--tenant: %s", ragplane.ErrorMessage(err)))
	}
	return &workerClient{base: strings.TrimRight(base, "/"), tenant: id, codec: codec}, nil
}

func (w *workerClient) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	u, _ := url.Parse(path)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set(tenantctx.Header, w.codec.Sign(tenantctx.Context{
		Identity:  ragplane.Identity{TenantID: w.tenant, Subject: "operator-cli", Roles: []string{ragplane.RoleReader, ragplane.RoleWriter}},
		RequestID: ragplane.NewRequestID(), IssuedAt: time.Now()}, method, u.Path))
	return send(req, w.base, out)
}

func newQueryCommand(cli *cliContext) *cobra.Command {
	var tenant, mode string
	var topK int
	var worker bool
	cmd := &cobra.Command{
		Use:   "query QUESTION",
		Short: "Ask the tenant's documents a question through the proxy ($RAGPLANE_TOKEN or $RAGPLANE_API_KEY)",
		Example: `  RAGPLANE_API_KEY=rpk_... ragplane query "How long are records kept?"
  ragplane query --mode hybrid --top-k 8 "Who approves exceptions?" -o json
  ragplane query --worker --tenant acme_corp "What is the retention policy?"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := newDataClient(cmd.Context(), cli, worker, tenant)
			if err != nil {
				return err
			}
			body := map[string]any{"query": args[0]}
			if mode != "" {
				body["retrieval_mode"] = mode
			}
			if topK > 0 {
				body["top_k"] = topK
			}
			b, _ := json.Marshal(body)
			var a ragplane.Answer
			if err := w.do(cmd.Context(), "POST", "/v1/query", "application/json", b, &a); err != nil {
				return err
			}
			if cli.structured() {
				return cli.printData(a)
			}
			fmt.Println(a.Answer)
			for _, s := range a.Sources {
				fmt.Printf("  [%d] %s (%s) score %.3f\n", s.ID, s.Title, s.Source, s.Score)
			}
			fmt.Printf("  -- %s retrieval, model %s, %d ms\n", a.Metadata.RetrievalMode, a.Metadata.Model, a.Metadata.LatencyMS)
			return nil
		},
	}
	cmd.Flags().BoolVar(&worker, "worker", false, "operator tool: go straight to $RAGPLANE_WORKER_URL, signing with $RAGPLANE_INTERNAL_KEY")
	cmd.Flags().StringVar(&tenant, "tenant", "", "with --worker: the tenant id")
	cmd.Flags().StringVar(&mode, "mode", "", "retrieval mode: vector, keyword, hybrid, graph (default: the tenant's)")
	cmd.Flags().IntVar(&topK, "top-k", 0, "how many sources")
	return cmd
}
