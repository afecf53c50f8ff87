package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ragplane/ragplane"
	chat "github.com/ragplane/ragplane/dataplane/answer/openai"
	"github.com/ragplane/ragplane/dataplane/embed/glove"
	"github.com/ragplane/ragplane/dataplane/embed/hashing"
	oaembed "github.com/ragplane/ragplane/dataplane/embed/openai"
	"github.com/ragplane/ragplane/dataplane/embed/use"
)

// Embedder turns texts into vectors of a fixed dimension.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dimension() int
	Name() string
}

var (
	_ Embedder = (*hashing.Embedder)(nil)
	_ Embedder = (*glove.Embedder)(nil)
	_ Embedder = (*oaembed.Embedder)(nil)
)

// providers builds and caches the embedders and chat clients tenants choose in their settings.
type providers struct {
	cfg      OpenAIConfig
	modelDir string // RAGPLANE_MODEL_DIR: the local models' files
	log      *slog.Logger

	mu         sync.Mutex
	embedders  map[string]Embedder
	chatClient *chat.Client
}

func newProviders(cfg OpenAIConfig, modelDir string, log *slog.Logger) *providers {
	return &providers{cfg: cfg, modelDir: modelDir, log: log, embedders: map[string]Embedder{}}
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
		e, err = p.local(set)
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

// local returns the built-in embedder that set.EmbeddingModel names; a new local model is one more
// case. It returns EINVALID for an unknown model or a dimension the model does not have, and
// EUNAVAILABLE when the model's files cannot be loaded (the detail is logged, not returned).
func (p *providers) local(set ragplane.Settings) (Embedder, error) {
	switch set.EmbeddingModel {
	case "ragplane-hash-v1":
		e, err := hashing.New(set.EmbeddingDimension)
		if err != nil {
			return nil, err
		}
		return e, nil
	case glove.Model:
		if set.EmbeddingDimension != glove.Dimensions {
			return nil, ragplane.FieldErrorf("embedding_dimension", "The embedding model %s has %d dimensions; set embedding_dimension to %d, not %d.",
				glove.Model, glove.Dimensions, glove.Dimensions, set.EmbeddingDimension)
		}
		e, err := glove.Load(p.modelDir)
		if err != nil {
			p.log.Error("local embedding model unavailable", "model", glove.Model, "error", err)
			return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "This worker cannot load the embedding model %s.", glove.Model)
		}
		return englishOnly{e}, nil
	case use.Name:
		if set.EmbeddingDimension != use.Dimension {
			return nil, ragplane.FieldErrorf("embedding_dimension", "The embedding model %s has %d dimensions; set embedding_dimension to %d, not %d.",
				use.Name, use.Dimension, use.Dimension, set.EmbeddingDimension)
		}
		e, err := use.Load(p.modelDir)
		if err != nil {
			p.log.Error("local embedding model unavailable", "model", use.Name, "error", err)
			return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "This worker cannot load the embedding model %s.", use.Name)
		}
		return englishOnly{e}, nil
	default:
		return nil, ragplane.FieldErrorf("embedding_model", "Unknown local embedding model %q; the local models are ragplane-hash-v1, %s and %s.",
			set.EmbeddingModel, glove.Model, use.Name)
	}
}

// englishOnly marks an embedder trained on English text alone (GloVe's vocabulary, USE-lite's
// training data): hybrid search fuses its ranking only for English chunks (languageBound).
type englishOnly struct{ Embedder }

func (englishOnly) Languages() []string { return []string{"english"} }

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
