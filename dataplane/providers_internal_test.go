package dataplane

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/ragplane/ragplane"
)

// TestLocalEmbedders checks how the local provider picks its model. The glove case loads the real
// model from RAGPLANE_MODEL_DIR (ops/models.sh): without it the test skips, except under `make test`
// (RAGPLANE_REQUIRE_STACK=1), where it fails.
func TestLocalEmbedders(t *testing.T) {
	dir := os.Getenv("RAGPLANE_MODEL_DIR")
	if dir == "" {
		if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
			t.Fatal("RAGPLANE_MODEL_DIR is not set: run `make up` (or `make models`) and source .ragplane/stack.env")
		}
		t.Skip("RAGPLANE_MODEL_DIR is not set (run `make models`)")
	}
	type expect struct {
		name    string // the embedder's Name, when it is built
		english bool   // it reads English only (hybrid search fuses it for English chunks)
		code    string
		field   string
	}
	tests := []struct {
		name     string
		given    ragplane.Settings
		modelDir string
		expect   expect
	}{
		{name: "hashing", given: local("ragplane-hash-v1", 384), expect: expect{name: "local/ragplane-hash-v1"}},
		{name: "hashing, bad dimension", given: local("ragplane-hash-v1", 4), expect: expect{code: ragplane.EINVALID, field: "embedding_dimension"}},
		{name: "glove", given: local("glove-6b-100d-sif", 100), expect: expect{name: "local/glove-6b-100d-sif", english: true}},
		{name: "glove, wrong dimension", given: local("glove-6b-100d-sif", 384), expect: expect{code: ragplane.EINVALID, field: "embedding_dimension"}},
		{name: "glove without its files", given: local("glove-6b-100d-sif", 100), modelDir: t.TempDir(), expect: expect{code: ragplane.EUNAVAILABLE}},
		{name: "use-lite-512", given: local("use-lite-512", 512), expect: expect{name: "use-lite-512", english: true}},
		{name: "use-lite-512, wrong dimension", given: local("use-lite-512", 100), expect: expect{code: ragplane.EINVALID, field: "embedding_dimension"}},
		{name: "use-lite-512 without its files", given: local("use-lite-512", 512), modelDir: t.TempDir(), expect: expect{code: ragplane.EUNAVAILABLE}},
		{name: "unknown model", given: local("word2vec", 300), expect: expect{code: ragplane.EINVALID, field: "embedding_model"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			modelDir := dir
			if tc.modelDir != "" {
				modelDir = tc.modelDir
			}
			p := newProviders(OpenAIConfig{}, modelDir, slog.New(slog.NewTextHandler(io.Discard, nil)))
			e, err := p.embedder(tc.given)
			if tc.expect.code != "" {
				if code, field := ragplane.ErrorCode(err), ragplane.ErrorField(err); code != tc.expect.code || field != tc.expect.field {
					t.Fatalf("got %v (%s, field %q), want %s, field %q", err, code, field, tc.expect.code, tc.expect.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Name() != tc.expect.name || e.Dimension() != tc.given.EmbeddingDimension {
				t.Errorf("got %s with %d dimensions, want %s with %d", e.Name(), e.Dimension(), tc.expect.name, tc.given.EmbeddingDimension)
			}
			if lb, ok := e.(languageBound); ok != tc.expect.english || ok && lb.Languages()[0] != "english" {
				t.Errorf("languages: bound %v, want %v", ok, tc.expect.english)
			}
			if again, _ := p.embedder(tc.given); again != e {
				t.Error("the embedder is not cached")
			}
		})
	}
}

func local(model string, dim int) ragplane.Settings {
	return ragplane.Settings{EmbeddingProvider: "local", EmbeddingModel: model, EmbeddingDimension: dim}
}
