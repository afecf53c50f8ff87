// Package openai writes answers with an OpenAI-compatible chat completions API
// (POST {base}/chat/completions) through the official openai-go SDK: OpenAI itself, Azure OpenAI,
// vLLM, Ollama and others. It answers in one response (Answer), as a stream of deltas (Stream),
// or as a bounded tool-calling agent (RunAgent). Prompts come from answer.BuildMessages, which
// quotes the sources as data.
//
// Retries: the SDK's own retry loop is used rather than a second one around it. It retries
// connection errors, 408, 409, 429 and 5xx responses with exponential backoff and jitter
// (0.5 s doubling, at most 8 s), and waits as long as a Retry-After-Ms or Retry-After header asks
// (up to 2 minutes; a longer wait fails at once instead). A stream is not retried once it has
// started.
//
// Errors: provider failures are *ragplane.Error with code EUPSTREAM ("answer provider <name>
// failed: ..."), a timed-out attempt is EUNAVAILABLE, bad requests (an unknown model tier, an
// empty query) are EINVALID, and a done ctx returns ctx.Err(). Messages carry the HTTP status and
// the provider's error code, never the provider's message text (it may echo credentials) nor the
// API key.
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
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/answer"
	"github.com/ragplane/ragplane/internal/openaiopts"
)

// Defaults of Config and Request.
const (
	DefaultProvider   = "openai"
	DefaultBaseURL    = "https://api.openai.com/v1"
	DefaultMaxRetries = 2
	// DefaultTimeout bounds one attempt, including reading a whole stream.
	DefaultTimeout = 120 * time.Second
	// DefaultTier is used when a request names no model tier.
	DefaultTier = "standard"
)

// Config configures a Client. Zero fields get defaults.
type Config struct {
	// Provider is the display name used in errors: "openai", "azure", "ollama", "vllm"... With
	// "azure" the key is sent in the api-key header instead of "Authorization: Bearer". With
	// "openai" and "azure" the answer budget is sent as max_completion_tokens (required by
	// reasoning models), with any other provider as max_tokens, which every compatible server
	// understands. Default "openai".
	Provider string
	// BaseURL is the API root, default https://api.openai.com/v1. Query parameters are sent with
	// every request, which is how Azure's api-version is given, e.g.
	// https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT?api-version=2024-10-21.
	BaseURL string
	// APIKey is the provider's key; empty sends none (Ollama, a local vLLM).
	APIKey string
	// Models maps a model tier ("small", "standard", "large") to a model name, e.g.
	// small -> gpt-4o-mini. At least one is required.
	Models map[string]string
	// Timeout bounds each attempt, including reading a whole stream; default 120 s.
	Timeout time.Duration
	// MaxRetries is the number of retries after a failed attempt; 0 means DefaultMaxRetries and
	// a negative value disables retries.
	MaxRetries int
	// HTTPClient is the client to use; a new one by default. Give it no Timeout: that would cut
	// long streams; use Timeout instead.
	HTTPClient *http.Client
}

// Client answers with a chat model. It is safe for concurrent use.
type Client struct {
	cfg Config
	svc oai.ChatCompletionService
}

// New returns a client. It returns EINVALID for a config it cannot use.
func New(cfg Config) (*Client, error) {
	if cfg.Provider == "" {
		cfg.Provider = DefaultProvider
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
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
	if len(cfg.Models) == 0 {
		return nil, ragplane.Errorf(ragplane.EINVALID, "Answer provider %s has no models.", cfg.Provider)
	}
	for tier, model := range cfg.Models {
		if model == "" {
			return nil, ragplane.Errorf(ragplane.EINVALID, "Answer provider %s has no model for tier %q.", cfg.Provider, tier)
		}
	}
	if cfg.Timeout < 0 {
		return nil, ragplane.Errorf(ragplane.EINVALID, "The answer timeout must not be negative.")
	}
	models := make(map[string]string, len(cfg.Models))
	for k, v := range cfg.Models {
		models[k] = v
	}
	cfg.Models = models
	opts, err := openaiopts.ClientOptions(cfg.Provider, cfg.BaseURL, cfg.APIKey, cfg.MaxRetries, cfg.Timeout, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, svc: oai.NewChatCompletionService(opts...)}, nil
}

// Answer returns the model's answer to req. With no sources it answers answer.NotFound without
// calling the model.
func (c *Client) Answer(ctx context.Context, req answer.Request) (answer.Result, error) {
	params, model, err := c.params(req)
	if err != nil {
		return answer.Result{}, err
	}
	if len(req.Sources) == 0 {
		return answer.Result{Answer: answer.NotFound, Model: model}, nil
	}
	resp, err := c.svc.New(ctx, params)
	if err != nil {
		return answer.Result{}, c.providerError(ctx, err)
	}
	res := answer.Result{
		Model:            model,
		PromptTokens:     int(resp.Usage.PromptTokens),
		CompletionTokens: int(resp.Usage.CompletionTokens),
	}
	if len(resp.Choices) == 0 {
		return res, c.upstreamf("returned no choices")
	}
	res.Answer = resp.Choices[0].Message.Content
	return res, nil
}

// Stream is Answer delivered as it is written: onDelta receives each piece of content in order,
// and the Result holds the whole answer and the token usage (servers that ignore
// stream_options.include_usage report none). If onDelta returns an error, the stream stops and
// Stream returns that error. When ctx is done, Stream stops reading, closes the connection and
// returns ctx.Err(). With an error, the Result still holds what arrived before it (the text so
// far, the usage if the provider sent it), so that a cut-off stream can be billed for it.
func (c *Client) Stream(ctx context.Context, req answer.Request, onDelta func(string) error) (answer.Result, error) {
	params, model, err := c.params(req)
	if err != nil {
		return answer.Result{}, err
	}
	if len(req.Sources) == 0 {
		if err := onDelta(answer.NotFound); err != nil {
			return answer.Result{}, err
		}
		return answer.Result{Answer: answer.NotFound, Model: model}, nil
	}
	params.StreamOptions = oai.ChatCompletionStreamOptionsParam{IncludeUsage: oai.Bool(true)}
	stream := c.svc.NewStreaming(ctx, params)
	defer stream.Close()

	res := answer.Result{Model: model}
	var sb strings.Builder
	for stream.Next() {
		chunk := stream.Current()
		if chunk.JSON.Usage.Valid() {
			res.PromptTokens = int(chunk.Usage.PromptTokens)
			res.CompletionTokens = int(chunk.Usage.CompletionTokens)
		}
		for _, choice := range chunk.Choices {
			if choice.Index != 0 || choice.Delta.Content == "" {
				continue
			}
			sb.WriteString(choice.Delta.Content)
			if err := onDelta(choice.Delta.Content); err != nil {
				res.Answer = sb.String()
				return res, err
			}
		}
	}
	if err := stream.Err(); err != nil {
		res.Answer = sb.String()
		return res, c.providerError(ctx, err)
	}
	res.Answer = sb.String()
	return res, nil
}

// params builds the request parameters and names the model. It returns EINVALID for an empty
// query or a tier without a model.
func (c *Client) params(req answer.Request) (oai.ChatCompletionNewParams, string, error) {
	if strings.TrimSpace(req.Query) == "" {
		return oai.ChatCompletionNewParams{}, "", ragplane.FieldErrorf("query", "The query is empty.")
	}
	tier := req.ModelTier
	if tier == "" {
		tier = DefaultTier
	}
	model, ok := c.cfg.Models[tier]
	if !ok {
		return oai.ChatCompletionNewParams{}, "", ragplane.FieldErrorf("model_tier",
			"Model tier %q is not available from answer provider %s.", tier, c.cfg.Provider)
	}
	msgs := answer.BuildMessages(req)
	params := oai.ChatCompletionNewParams{
		Model:       model,
		Messages:    make([]oai.ChatCompletionMessageParamUnion, 0, len(msgs)),
		Temperature: oai.Float(req.Temperature),
	}
	for _, m := range msgs {
		if m.Role == "system" {
			params.Messages = append(params.Messages, oai.SystemMessage(m.Content))
		} else {
			params.Messages = append(params.Messages, oai.UserMessage(m.Content))
		}
	}
	if req.MaxTokens > 0 {
		if p := strings.ToLower(c.cfg.Provider); p == "openai" || p == "azure" {
			params.MaxCompletionTokens = oai.Int(int64(req.MaxTokens))
		} else {
			params.MaxTokens = oai.Int(int64(req.MaxTokens))
		}
	}
	return params, model, nil
}

func (c *Client) upstreamf(format string, args ...any) error {
	return ragplane.Errorf(ragplane.EUPSTREAM, "answer provider %s failed: "+format,
		append([]any{c.cfg.Provider}, args...)...)
}

// providerError translates an SDK error. The cause stays in the chain (errors.As finds the
// *oai.Error) and in Error() for logs; its text is safe (the SDK prints only the status). The
// client-facing message names the provider, the status and the provider's error code.
func (c *Client) providerError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) {
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "answer provider %s timed out after %s", c.cfg.Provider, c.cfg.Timeout)
	}
	var apiErr *oai.Error
	if errors.As(err, &apiErr) {
		msg := fmt.Sprintf("%d %s", apiErr.StatusCode, http.StatusText(apiErr.StatusCode))
		if apiErr.Code != "" {
			msg += " (" + apiErr.Code + ")"
		}
		return fmt.Errorf("%w: %w", c.upstreamf("%s", msg), err)
	}
	var streamErr *ssestream.StreamError
	if errors.As(err, &streamErr) {
		// Not wrapped: its text is the provider's error message, which may echo secrets.
		return c.upstreamf("error event in the stream")
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return fmt.Errorf("%w: %w", c.upstreamf("request failed"), err)
	}
	return fmt.Errorf("%w: %w", c.upstreamf("invalid response"), err)
}

// Complete sends one system and one user message to the model of tier and returns its text, asking
// for a JSON object where the provider supports it. It serves structured side tasks, such as
// knowledge-graph extraction, that are not answers to a question.
func (c *Client) Complete(ctx context.Context, tier, system, user string, maxTokens int) (string, error) {
	if tier == "" {
		tier = DefaultTier
	}
	model, ok := c.cfg.Models[tier]
	if !ok {
		return "", ragplane.FieldErrorf("model_tier", "Model tier %q is not available from answer provider %s.", tier, c.cfg.Provider)
	}
	params := oai.ChatCompletionNewParams{
		Model:    model,
		Messages: []oai.ChatCompletionMessageParamUnion{oai.SystemMessage(system), oai.UserMessage(user)},
		ResponseFormat: oai.ChatCompletionNewParamsResponseFormatUnion{
			OfJSONObject: &oai.ResponseFormatJSONObjectParam{},
		},
	}
	if maxTokens > 0 {
		if p := strings.ToLower(c.cfg.Provider); p == "openai" || p == "azure" {
			params.MaxCompletionTokens = oai.Int(int64(maxTokens))
		} else {
			params.MaxTokens = oai.Int(int64(maxTokens))
		}
	}
	resp, err := c.svc.New(ctx, params)
	if err != nil {
		return "", c.providerError(ctx, err)
	}
	if len(resp.Choices) == 0 {
		return "", c.upstreamf("returned no choices")
	}
	return resp.Choices[0].Message.Content, nil
}
