package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ragplane/ragplane"
	chat "github.com/ragplane/ragplane/dataplane/answer/openai"
	"github.com/ragplane/ragplane/dataplane/embed/hashing"
	oaembed "github.com/ragplane/ragplane/dataplane/embed/openai"
)

// Embedder turns texts into vectors of a fixed dimension.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dimension() int
	Name() string
}

// providers builds and caches the embedders and chat clients tenants choose in their settings.
type providers struct {
	cfg OpenAIConfig
	log *slog.Logger

	mu         sync.Mutex
	embedders  map[string]Embedder
	chatClient *chat.Client
}

func newProviders(cfg OpenAIConfig, log *slog.Logger) *providers {
	return &providers{cfg: cfg, log: log, embedders: map[string]Embedder{}}
}

// embedder returns the tenant's embedder: the local one, or the configured OpenAI-compatible one.
func (p *providers) embedder(set ragplane.Settings) (Embedder, error) {
	key := fmt.Sprintf("%s/%s/%d", set.EmbeddingProvider, set.EmbeddingModel, set.EmbeddingDimension)
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.embedders[key]; ok {
		return e, nil
	}
	var e Embedder
	var err error
	switch set.EmbeddingProvider {
	case "local":
		e, err = hashing.New(set.EmbeddingDimension)
	case "openai":
		if !p.cfg.Enabled() {
			return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "The tenant embeds with an OpenAI-compatible provider, which this worker is not configured with.")
		}
		e, err = oaembed.New(oaembed.Config{Provider: p.cfg.Provider, BaseURL: p.cfg.BaseURL, APIKey: p.cfg.APIKey,
			Model: set.EmbeddingModel, Dimensions: set.EmbeddingDimension, Timeout: p.cfg.Timeout})
	default:
		return nil, ragplane.Errorf(ragplane.EINVALID, "Unknown embedding provider %q.", set.EmbeddingProvider)
	}
	if err != nil {
		return nil, err
	}
	p.embedders[key] = e
	return e, nil
}

// chat returns the OpenAI-compatible chat client, if this worker has one.
func (p *providers) chat(set ragplane.Settings) (*chat.Client, error) {
	if !p.cfg.Enabled() {
		return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "This worker has no OpenAI-compatible model configured.")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.chatClient == nil {
		c, err := chat.New(chat.Config{Provider: p.cfg.Provider, BaseURL: p.cfg.BaseURL, APIKey: p.cfg.APIKey,
			Models: p.cfg.Models, Timeout: p.cfg.Timeout})
		if err != nil {
			return nil, err
		}
		p.chatClient = c
	}
	return p.chatClient, nil
}
