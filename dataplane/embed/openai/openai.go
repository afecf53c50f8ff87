// Package openai embeds texts with an OpenAI-compatible embeddings API (POST {base}/embeddings)
// through the official openai-go SDK: OpenAI itself, Azure OpenAI, vLLM, Ollama and others.
//
// Retries: the SDK's own retry loop is used rather than a second one around it. It retries
// connection errors, 408, 409, 429 and 5xx responses with exponential backoff and jitter
// (0.5 s doubling, at most 8 s), and waits as long as a Retry-After-Ms or Retry-After header asks
// (up to 2 minutes; a longer wait fails at once instead).
//
// Errors: provider failures are *ragplane.Error with code EUPSTREAM ("embedding provider <name>
// failed: ..."), a timeout of one attempt is EUNAVAILABLE, and a done ctx returns ctx.Err().
// Messages carry the HTTP status and the provider's error code, never the provider's message
// text (it may echo credentials) nor the API key.
package openai

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	oai "github.com/openai/openai-go/v3"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/openaiopts"
)

// Defaults of Config.
const (
	DefaultProvider   = "openai"
	DefaultBaseURL    = "https://api.openai.com/v1"
	DefaultBatchSize  = 96
	DefaultMaxRetries = 2
	DefaultTimeout    = 60 * time.Second
	// MaxBatchSize is OpenAI's limit of inputs per request.
	MaxBatchSize = 2048
)

// Config configures an Embedder. Zero fields get defaults.
type Config struct {
	// Provider is the display name used in Name and in errors: "openai", "azure", "ollama",
	// "vllm"... With "azure" the key is sent in the api-key header instead of
	// "Authorization: Bearer". Default "openai".
	Provider string
	// BaseURL is the API root, default https://api.openai.com/v1. Query parameters are sent with
	// every request, which is how Azure's api-version is given, e.g.
	// https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT?api-version=2024-10-21.
	BaseURL string
	// APIKey is the provider's key; empty sends none (Ollama, a local vLLM).
	APIKey string
	// Model is the embedding model (for Azure deployments, what the deployment serves). Required.
	Model string
	// Dimensions is the length of the vectors. Required: a tenant's vectors are stored with a
	// fixed dimension, and every returned vector is checked against it.
	Dimensions int
	// OmitDimensions leaves the `dimensions` parameter out of requests, for models that have a
	// fixed size and reject it (text-embedding-ada-002, most Ollama and vLLM models).
	OmitDimensions bool
	// BatchSize is the number of inputs per request, default 96, at most MaxBatchSize.
	BatchSize int
	// MaxRetries is the number of retries after a failed attempt; 0 means DefaultMaxRetries and
	// a negative value disables retries.
	MaxRetries int
	// Timeout bounds each attempt, default 60 s.
	Timeout time.Duration
	// HTTPClient is the client to use; a new one by default. Its Timeout, if any, also applies.
	HTTPClient *http.Client
}

// Embedder embeds texts with a remote model. It is safe for concurrent use.
type Embedder struct {
	cfg Config
	svc oai.EmbeddingService
}

// New returns an embedder. It returns EINVALID for a config it cannot use.
func New(cfg Config) (*Embedder, error) {
	if cfg.Provider == "" {
		cfg.Provider = DefaultProvider
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	} else if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	switch {
	case cfg.Model == "":
		return nil, ragplane.FieldErrorf("embedding_model", "The embedding model is required.")
	case cfg.Dimensions <= 0:
		return nil, ragplane.FieldErrorf("embedding_dimension", "The embedding dimension must be positive.")
	case cfg.BatchSize < 0 || cfg.BatchSize > MaxBatchSize:
		return nil, ragplane.Errorf(ragplane.EINVALID, "The embedding batch size must be between 1 and %d.", MaxBatchSize)
	case cfg.Timeout < 0:
		return nil, ragplane.Errorf(ragplane.EINVALID, "The embedding timeout must not be negative.")
	}
	opts, err := openaiopts.ClientOptions(cfg.Provider, cfg.BaseURL, cfg.APIKey, cfg.MaxRetries, cfg.Timeout, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	return &Embedder{cfg: cfg, svc: oai.NewEmbeddingService(opts...)}, nil
}

// Dimension returns the configured vector length.
func (e *Embedder) Dimension() int { return e.cfg.Dimensions }

// Name returns "<provider>/<model>", e.g. "openai/text-embedding-3-small".
func (e *Embedder) Name() string { return e.cfg.Provider + "/" + e.cfg.Model }

// Embed returns one vector per text, in order, sending BatchSize texts per request, one request
// at a time. It returns EINVALID for an empty text (providers reject them), EUPSTREAM when the
// provider fails or answers with vectors of the wrong shape, EUNAVAILABLE when an attempt times
// out, and ctx.Err() when ctx is done.
func (e *Embedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	for i, t := range texts {
		if strings.TrimSpace(t) == "" {
			return nil, ragplane.Errorf(ragplane.EINVALID, "Text %d to embed is empty.", i)
		}
	}
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += e.cfg.BatchSize {
		batch := texts[start:min(start+e.cfg.BatchSize, len(texts))]
		vecs, err := e.embedBatch(ctx, batch)
		if err != nil {
			return nil, err
		}
		out = append(out, vecs...)
	}
	return out, nil
}

func (e *Embedder) embedBatch(ctx context.Context, batch []string) ([][]float32, error) {
	params := oai.EmbeddingNewParams{
		Model:          e.cfg.Model,
		Input:          oai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: batch},
		EncodingFormat: oai.EmbeddingNewParamsEncodingFormatFloat,
	}
	if !e.cfg.OmitDimensions {
		params.Dimensions = oai.Int(int64(e.cfg.Dimensions))
	}
	resp, err := e.svc.New(ctx, params)
	if err != nil {
		return nil, e.providerError(ctx, err)
	}
	if len(resp.Data) != len(batch) {
		return nil, e.upstreamf("returned %d vectors for %d inputs", len(resp.Data), len(batch))
	}
	// Data carries an index per vector; order by it rather than trusting the array order.
	vecs := make([][]float32, len(batch))
	backing := make([]float32, len(batch)*e.cfg.Dimensions)
	for _, d := range resp.Data {
		i := int(d.Index)
		switch {
		case i < 0 || i >= len(batch) || vecs[i] != nil:
			return nil, e.upstreamf("returned a vector with a bad or repeated index %d", d.Index)
		case len(d.Embedding) != e.cfg.Dimensions:
			return nil, e.upstreamf("returned %d-dimensional vectors, want %d", len(d.Embedding), e.cfg.Dimensions)
		}
		v := backing[i*e.cfg.Dimensions : (i+1)*e.cfg.Dimensions : (i+1)*e.cfg.Dimensions]
		for j, x := range d.Embedding {
			v[j] = float32(x)
		}
		vecs[i] = v
	}
	return vecs, nil
}

func (e *Embedder) upstreamf(format string, args ...any) error {
	return ragplane.Errorf(ragplane.EUPSTREAM, "embedding provider %s failed: "+format,
		append([]any{e.cfg.Provider}, args...)...)
}

// providerError translates an SDK error. The cause stays in the chain (errors.As finds the
// *oai.Error) and in Error() for logs; its text is safe (the SDK prints only the status). The
// client-facing message names the provider, the status and the provider's error code.
func (e *Embedder) providerError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) {
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "embedding provider %s timed out after %s", e.cfg.Provider, e.cfg.Timeout)
	}
	var apiErr *oai.Error
	if errors.As(err, &apiErr) {
		msg := fmt.Sprintf("%d %s", apiErr.StatusCode, http.StatusText(apiErr.StatusCode))
		if apiErr.Code != "" {
			msg += " (" + apiErr.Code + ")"
		}
		return fmt.Errorf("%w: %w", e.upstreamf("%s", msg), err)
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return fmt.Errorf("%w: %w", e.upstreamf("request failed"), err)
	}
	return fmt.Errorf("%w: %w", e.upstreamf("invalid response"), err)
}
