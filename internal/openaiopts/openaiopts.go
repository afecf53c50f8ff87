// Package openaiopts configures the official openai-go SDK the same way for the data plane's
// embedding and chat clients.
package openaiopts

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/openai/openai-go/v3/option"

	"github.com/ragplane/ragplane"
)

// ClientOptions builds the SDK options for an OpenAI-compatible provider (OpenAI, Azure OpenAI,
// vLLM, Ollama): query parameters of baseURL (e.g. Azure's api-version) go on every request, and
// Azure takes its key in the api-key header. The service, unlike oai.NewClient, reads no OPENAI_*
// environment variables: all configuration comes from Config.
func ClientOptions(provider, baseURL, apiKey string, retries int, timeout time.Duration, hc *http.Client) ([]option.RequestOption, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, ragplane.Errorf(ragplane.EINVALID, "The base URL of provider %s is not an http(s) URL.", provider)
	}
	query := u.Query()
	u.RawQuery, u.Fragment = "", ""
	opts := []option.RequestOption{
		option.WithBaseURL(u.String()),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(retries),
		option.WithRequestTimeout(timeout),
	}
	// Sorted for a stable request URL.
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		opts = append(opts, option.WithQuery(k, query.Get(k)))
	}
	switch {
	case apiKey == "":
	case strings.EqualFold(provider, "azure"):
		opts = append(opts, option.WithHeader("api-key", apiKey))
	default:
		opts = append(opts, option.WithAPIKey(apiKey))
	}
	return opts, nil
}
