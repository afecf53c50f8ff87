package ragplane_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
)

// MustLayer validates and normalises l in place as a stored plan or tenant layer would be, and
// returns it.
func MustLayer(tb testing.TB, l ragplane.ConfigLayer) ragplane.ConfigLayer {
	tb.Helper()
	if err := ragplane.ValidateSettings("settings", l.Settings); err != nil {
		tb.Fatalf("invalid layer settings %v: %v", l.Settings, err)
	}
	if err := ragplane.ValidateLimits("limits", l.Limits); err != nil {
		tb.Fatalf("invalid layer limits %v: %v", l.Limits, err)
	}
	return l
}

// MustResolve resolves the system defaults under plan, tenant and request and fails tb on error.
func MustResolve(tb testing.TB, plan, tenant ragplane.ConfigLayer, request ragplane.Overrides) *ragplane.Config {
	tb.Helper()
	cfg, err := ragplane.Resolve(systemLayer(), MustLayer(tb, plan), MustLayer(tb, tenant), request)
	if err != nil {
		tb.Fatalf("Resolve: %v", err)
	}
	return cfg
}

func systemLayer() ragplane.ConfigLayer {
	return ragplane.ConfigLayer{Settings: ragplane.SystemSettings(), Limits: ragplane.SystemLimits()}
}

func docKeys(docs []ragplane.FieldDoc) []string {
	keys := make([]string, 0, len(docs))
	for _, d := range docs {
		keys = append(keys, d.Key)
	}
	sort.Strings(keys)
	return keys
}

func sourceKeys(m map[string]ragplane.Sourced) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonMap round-trips v through JSON into a map, keeping numbers as json.Number so that int64 5,
// float64 5 and int 5 compare equal but 5 and 5.5 do not.
func jsonMap(tb testing.TB, v any) map[string]any {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("marshal %v: %v", v, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		tb.Fatalf("unmarshal %s: %v", b, err)
	}
	return m
}

// checkTypedMatchesSources fails tb unless cfg's typed Settings and Limits hold exactly the values
// of its source maps, and the source maps have every documented key.
func checkTypedMatchesSources(tb testing.TB, cfg *ragplane.Config) {
	tb.Helper()
	for _, c := range []struct {
		name    string
		typed   any
		sources map[string]ragplane.Sourced
		docs    []ragplane.FieldDoc
	}{
		{"settings", cfg.Settings, cfg.SettingSources, ragplane.SettingDocs()},
		{"limits", cfg.Limits, cfg.LimitSources, ragplane.LimitDocs()},
	} {
		if got, want := sourceKeys(c.sources), docKeys(c.docs); !slices.Equal(got, want) {
			tb.Errorf("%s source keys = %v, want %v", c.name, got, want)
		}
		flat := make(map[string]any, len(c.sources))
		for k, s := range c.sources {
			flat[k] = s.Value
		}
		typed, fromSources := jsonMap(tb, c.typed), jsonMap(tb, flat)
		if !reflect.DeepEqual(typed, fromSources) {
			tb.Errorf("typed %s = %v, sources say %v", c.name, typed, fromSources)
		}
	}
}

func TestResolve(t *testing.T) {
	type given struct {
		plan, tenant ragplane.ConfigLayer
		request      ragplane.Overrides
	}
	type when struct {
		key   string
		limit bool // look the key up in LimitSources instead of SettingSources
	}
	tests := []struct {
		name   string
		given  given
		when   when
		expect ragplane.Sourced
	}{
		// Settings: each layer overrides the one below.
		{
			name:   "setting from system",
			when:   when{key: "top_k"},
			expect: ragplane.Sourced{Value: int64(5), Source: ragplane.LayerSystem},
		},
		{
			name:   "setting from plan",
			given:  given{plan: ragplane.ConfigLayer{Settings: ragplane.Overrides{"top_k": 8}}},
			when:   when{key: "top_k"},
			expect: ragplane.Sourced{Value: int64(8), Source: ragplane.LayerPlan},
		},
		{
			name: "setting from tenant over plan",
			given: given{
				plan:   ragplane.ConfigLayer{Settings: ragplane.Overrides{"top_k": 8}},
				tenant: ragplane.ConfigLayer{Settings: ragplane.Overrides{"top_k": 3}},
			},
			when:   when{key: "top_k"},
			expect: ragplane.Sourced{Value: int64(3), Source: ragplane.LayerTenant},
		},
		{
			name: "setting from request over tenant and plan",
			given: given{
				plan:    ragplane.ConfigLayer{Settings: ragplane.Overrides{"top_k": 8}},
				tenant:  ragplane.ConfigLayer{Settings: ragplane.Overrides{"top_k": 3}},
				request: ragplane.Overrides{"top_k": float64(12)}, // as decoded from JSON
			},
			when:   when{key: "top_k"},
			expect: ragplane.Sourced{Value: int64(12), Source: ragplane.LayerRequest},
		},
		{
			name: "request json.Number is normalised",
			given: given{
				request: ragplane.Overrides{"max_tokens_per_query": json.Number("700")},
			},
			when:   when{key: "max_tokens_per_query"},
			expect: ragplane.Sourced{Value: int64(700), Source: ragplane.LayerRequest},
		},
		{
			name: "nil in tenant means not set",
			given: given{
				plan:   ragplane.ConfigLayer{Settings: ragplane.Overrides{"top_k": 8}},
				tenant: ragplane.ConfigLayer{Settings: ragplane.Overrides{"top_k": nil}},
			},
			when:   when{key: "top_k"},
			expect: ragplane.Sourced{Value: int64(8), Source: ragplane.LayerPlan},
		},
		{
			name: "nil in plan and tenant falls back to system",
			given: given{
				plan:   ragplane.ConfigLayer{Settings: ragplane.Overrides{"temperature": nil}},
				tenant: ragplane.ConfigLayer{Settings: ragplane.Overrides{"temperature": nil}},
			},
			when:   when{key: "temperature"},
			expect: ragplane.Sourced{Value: 0.2, Source: ragplane.LayerSystem},
		},
		{
			name: "nil in plan does not hide tenant",
			given: given{
				plan:   ragplane.ConfigLayer{Settings: ragplane.Overrides{"retrieval_mode": nil}},
				tenant: ragplane.ConfigLayer{Settings: ragplane.Overrides{"retrieval_mode": ragplane.RetrievalGraph}},
			},
			when:   when{key: "retrieval_mode"},
			expect: ragplane.Sourced{Value: ragplane.RetrievalGraph, Source: ragplane.LayerTenant},
		},
		{
			name:   "float setting from request",
			given:  given{request: ragplane.Overrides{"temperature": 0.9}},
			when:   when{key: "temperature"},
			expect: ragplane.Sourced{Value: 0.9, Source: ragplane.LayerRequest},
		},
		{
			name:   "integral float setting from request stays float",
			given:  given{request: ragplane.Overrides{"temperature": json.Number("1")}},
			when:   when{key: "temperature"},
			expect: ragplane.Sourced{Value: float64(1), Source: ragplane.LayerRequest},
		},
		{
			name: "enum setting from request over tenant",
			given: given{
				tenant:  ragplane.ConfigLayer{Settings: ragplane.Overrides{"retrieval_mode": ragplane.RetrievalVector}},
				request: ragplane.Overrides{"retrieval_mode": ragplane.RetrievalKeyword},
			},
			when:   when{key: "retrieval_mode"},
			expect: ragplane.Sourced{Value: ragplane.RetrievalKeyword, Source: ragplane.LayerRequest},
		},
		{
			name:   "fixed setting from tenant",
			given:  given{tenant: ragplane.ConfigLayer{Settings: ragplane.Overrides{"embedding_dimension": 1536}}},
			when:   when{key: "embedding_dimension"},
			expect: ragplane.Sourced{Value: int64(1536), Source: ragplane.LayerTenant},
		},
		{
			name:   "request leaves other settings alone",
			given:  given{tenant: ragplane.ConfigLayer{Settings: ragplane.Overrides{"chunk_size": 512}}, request: ragplane.Overrides{"top_k": 2}},
			when:   when{key: "chunk_size"},
			expect: ragplane.Sourced{Value: int64(512), Source: ragplane.LayerTenant},
		},

		// Limits: system -> plan -> tenant.
		{
			name:   "limit from system",
			when:   when{key: "burst", limit: true},
			expect: ragplane.Sourced{Value: int64(10), Source: ragplane.LayerSystem},
		},
		{
			name:   "limit from plan",
			given:  given{plan: ragplane.ConfigLayer{Limits: ragplane.Overrides{"burst": 50}}},
			when:   when{key: "burst", limit: true},
			expect: ragplane.Sourced{Value: int64(50), Source: ragplane.LayerPlan},
		},
		{
			name: "limit from tenant over plan",
			given: given{
				plan:   ragplane.ConfigLayer{Limits: ragplane.Overrides{"burst": 50}},
				tenant: ragplane.ConfigLayer{Limits: ragplane.Overrides{"burst": 7}},
			},
			when:   when{key: "burst", limit: true},
			expect: ragplane.Sourced{Value: int64(7), Source: ragplane.LayerTenant},
		},
		{
			name: "nil limit in tenant means not set",
			given: given{
				plan:   ragplane.ConfigLayer{Limits: ragplane.Overrides{"burst": 50}},
				tenant: ragplane.ConfigLayer{Limits: ragplane.Overrides{"burst": nil}},
			},
			when:   when{key: "burst", limit: true},
			expect: ragplane.Sourced{Value: int64(50), Source: ragplane.LayerPlan},
		},
		{
			name:   "float limit from tenant",
			given:  given{tenant: ragplane.ConfigLayer{Limits: ragplane.Overrides{"requests_per_second": 2.5}}},
			when:   when{key: "requests_per_second", limit: true},
			expect: ragplane.Sourced{Value: 2.5, Source: ragplane.LayerTenant},
		},
		{
			name:   "enum limit from plan",
			given:  given{plan: ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_model_tier": "large"}}},
			when:   when{key: "max_model_tier", limit: true},
			expect: ragplane.Sourced{Value: "large", Source: ragplane.LayerPlan},
		},
		{
			name:   "setting of the same name does not set the limit",
			given:  given{tenant: ragplane.ConfigLayer{Settings: ragplane.Overrides{"max_tokens_per_query": 100}}},
			when:   when{key: "max_tokens_per_query", limit: true},
			expect: ragplane.Sourced{Value: int64(2048), Source: ragplane.LayerSystem},
		},

		// Clamping: top_k by max_top_k (system 20), whatever layer set it.
		{
			name:   "top_k from system clamped by plan limit",
			given:  given{plan: ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_top_k": 3}}},
			when:   when{key: "top_k"},
			expect: ragplane.Sourced{Value: int64(3), Source: ragplane.LayerSystem, Clamped: true},
		},
		{
			name:   "top_k from plan clamped by system limit",
			given:  given{plan: ragplane.ConfigLayer{Settings: ragplane.Overrides{"top_k": 50}}},
			when:   when{key: "top_k"},
			expect: ragplane.Sourced{Value: int64(20), Source: ragplane.LayerPlan, Clamped: true},
		},
		{
			name: "top_k from tenant clamped by plan limit",
			given: given{
				plan:   ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_top_k": 10}},
				tenant: ragplane.ConfigLayer{Settings: ragplane.Overrides{"top_k": 15}},
			},
			when:   when{key: "top_k"},
			expect: ragplane.Sourced{Value: int64(10), Source: ragplane.LayerTenant, Clamped: true},
		},
		{
			name: "top_k from request clamped by tenant limit",
			given: given{
				tenant:  ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_top_k": 4}},
				request: ragplane.Overrides{"top_k": 100},
			},
			when:   when{key: "top_k"},
			expect: ragplane.Sourced{Value: int64(4), Source: ragplane.LayerRequest, Clamped: true},
		},
		{
			name:   "top_k equal to limit is not clamped",
			given:  given{request: ragplane.Overrides{"top_k": 20}},
			when:   when{key: "top_k"},
			expect: ragplane.Sourced{Value: int64(20), Source: ragplane.LayerRequest},
		},
		{
			name: "tenant may raise max_top_k above the plan's",
			given: given{
				plan:    ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_top_k": 10}},
				tenant:  ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_top_k": 40}},
				request: ragplane.Overrides{"top_k": 30},
			},
			when:   when{key: "top_k"},
			expect: ragplane.Sourced{Value: int64(30), Source: ragplane.LayerRequest},
		},

		// Clamping: max_tokens_per_query by the limit of the same name (system 2048).
		{
			name:   "max_tokens_per_query from request clamped",
			given:  given{request: ragplane.Overrides{"max_tokens_per_query": 5000}},
			when:   when{key: "max_tokens_per_query"},
			expect: ragplane.Sourced{Value: int64(2048), Source: ragplane.LayerRequest, Clamped: true},
		},
		{
			name: "max_tokens_per_query from tenant clamped by plan limit",
			given: given{
				plan:   ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_tokens_per_query": 512}},
				tenant: ragplane.ConfigLayer{Settings: ragplane.Overrides{"max_tokens_per_query": 1000}},
			},
			when:   when{key: "max_tokens_per_query"},
			expect: ragplane.Sourced{Value: int64(512), Source: ragplane.LayerTenant, Clamped: true},
		},
		{
			name:   "max_tokens_per_query from system clamped by tenant limit",
			given:  given{tenant: ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_tokens_per_query": 100}}},
			when:   when{key: "max_tokens_per_query"},
			expect: ragplane.Sourced{Value: int64(100), Source: ragplane.LayerSystem, Clamped: true},
		},
		{
			name:   "max_tokens_per_query at the ceiling from request with a raised limit",
			given:  given{tenant: ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_tokens_per_query": 1_000_000}}, request: ragplane.Overrides{"max_tokens_per_query": 1_000_000}},
			when:   when{key: "max_tokens_per_query"},
			expect: ragplane.Sourced{Value: int64(1_000_000), Source: ragplane.LayerRequest},
		},

		// Clamping: model_tier by max_model_tier (system "standard"), small < standard < large.
		{
			name:   "model_tier large from request clamped",
			given:  given{request: ragplane.Overrides{"model_tier": "large"}},
			when:   when{key: "model_tier"},
			expect: ragplane.Sourced{Value: "standard", Source: ragplane.LayerRequest, Clamped: true},
		},
		{
			name:   "model_tier large from plan clamped",
			given:  given{plan: ragplane.ConfigLayer{Settings: ragplane.Overrides{"model_tier": "large"}}},
			when:   when{key: "model_tier"},
			expect: ragplane.Sourced{Value: "standard", Source: ragplane.LayerPlan, Clamped: true},
		},
		{
			name:   "model_tier from system clamped by tenant limit",
			given:  given{tenant: ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_model_tier": "small"}}},
			when:   when{key: "model_tier"},
			expect: ragplane.Sourced{Value: "small", Source: ragplane.LayerSystem, Clamped: true},
		},
		{
			name:   "model_tier as a model name (the compliance seed's gpt-4) is its tier, clamped",
			given:  given{request: ragplane.Overrides{"model_tier": "gpt-4"}},
			when:   when{key: "model_tier"},
			expect: ragplane.Sourced{Value: "standard", Source: ragplane.LayerRequest, Clamped: true},
		},
		{
			name: "model_tier as a model name within the limit",
			given: given{
				tenant:  ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_model_tier": "large"}},
				request: ragplane.Overrides{"model_tier": "gpt-3.5-turbo"},
			},
			when:   when{key: "model_tier"},
			expect: ragplane.Sourced{Value: "small", Source: ragplane.LayerRequest},
		},
		{
			name: "model_tier large from tenant allowed by plan limit",
			given: given{
				plan:   ragplane.ConfigLayer{Limits: ragplane.Overrides{"max_model_tier": "large"}},
				tenant: ragplane.ConfigLayer{Settings: ragplane.Overrides{"model_tier": "large"}},
			},
			when:   when{key: "model_tier"},
			expect: ragplane.Sourced{Value: "large", Source: ragplane.LayerTenant},
		},
		{
			name:   "model_tier below limit not clamped",
			given:  given{request: ragplane.Overrides{"model_tier": "small"}},
			when:   when{key: "model_tier"},
			expect: ragplane.Sourced{Value: "small", Source: ragplane.LayerRequest},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := MustResolve(t, tc.given.plan, tc.given.tenant, tc.given.request)
			sources := cfg.SettingSources
			if tc.when.limit {
				sources = cfg.LimitSources
			}
			got, ok := sources[tc.when.key]
			if !ok {
				t.Fatalf("%s missing from sources", tc.when.key)
			}
			if got != tc.expect {
				t.Fatalf("%s = %#v, want %#v", tc.when.key, got, tc.expect)
			}
			for k, s := range cfg.LimitSources {
				if s.Source == ragplane.LayerRequest || s.Clamped {
					t.Errorf("limit %s = %+v: limits come from system, plan or tenant and are never clamped", k, s)
				}
			}
			checkTypedMatchesSources(t, cfg)
		})
	}
}

func TestResolveRequestAllowList(t *testing.T) {
	type expect struct {
		code  string
		field string
	}
	tests := []struct {
		name   string
		given  ragplane.Overrides
		expect expect
	}{
		{name: "nil request", given: nil},
		{name: "empty request", given: ragplane.Overrides{}},
		{name: "model_tier", given: ragplane.Overrides{"model_tier": "small"}},
		{name: "retrieval_mode", given: ragplane.Overrides{"retrieval_mode": ragplane.RetrievalAgentic}},
		{name: "top_k", given: ragplane.Overrides{"top_k": 7}},
		{name: "max_tokens_per_query", given: ragplane.Overrides{"max_tokens_per_query": 300}},
		{name: "temperature", given: ragplane.Overrides{"temperature": 0}},
		{
			name: "all allowed keys",
			given: ragplane.Overrides{
				"model_tier": "small", "retrieval_mode": ragplane.RetrievalVector, "top_k": 7,
				"max_tokens_per_query": 300, "temperature": 1.5,
			},
		},
		{
			name:   "chunk_size",
			given:  ragplane.Overrides{"chunk_size": 512},
			expect: expect{ragplane.EINVALID, "override_config.chunk_size"},
		},
		{
			name:   "chunk_overlap",
			given:  ragplane.Overrides{"chunk_overlap": 0},
			expect: expect{ragplane.EINVALID, "override_config.chunk_overlap"},
		},
		{
			name:   "embedding_dimension",
			given:  ragplane.Overrides{"embedding_dimension": 768},
			expect: expect{ragplane.EINVALID, "override_config.embedding_dimension"},
		},
		{
			name:   "embedding_provider",
			given:  ragplane.Overrides{"embedding_provider": "openai"},
			expect: expect{ragplane.EINVALID, "override_config.embedding_provider"},
		},
		{
			name:   "embedding_model",
			given:  ragplane.Overrides{"embedding_model": "text-embedding-3-small"},
			expect: expect{ragplane.EINVALID, "override_config.embedding_model"},
		},
		{
			name:   "a limit",
			given:  ragplane.Overrides{"max_top_k": 100},
			expect: expect{ragplane.EINVALID, "override_config.max_top_k"},
		},
		{
			name:   "unknown key",
			given:  ragplane.Overrides{"verbose": true},
			expect: expect{ragplane.EINVALID, "override_config.verbose"},
		},
		{
			name:   "allowed key with a disallowed one",
			given:  ragplane.Overrides{"top_k": 7, "chunk_size": 512},
			expect: expect{ragplane.EINVALID, "override_config.chunk_size"},
		},
		{
			name:   "null allowed key",
			given:  ragplane.Overrides{"top_k": nil},
			expect: expect{ragplane.EINVALID, "override_config.top_k"},
		},
		{
			name:   "allowed key with bad value",
			given:  ragplane.Overrides{"temperature": "hot"},
			expect: expect{ragplane.EINVALID, "override_config.temperature"},
		},
		{
			name:   "allowed key out of bounds",
			given:  ragplane.Overrides{"top_k": 0},
			expect: expect{ragplane.EINVALID, "override_config.top_k"},
		},
		{
			name:   "allowed enum not in list",
			given:  ragplane.Overrides{"model_tier": "huge"},
			expect: expect{ragplane.EINVALID, "override_config.model_tier"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ragplane.Resolve(systemLayer(), ragplane.ConfigLayer{}, ragplane.ConfigLayer{}, tc.given)
			assertErr(t, err, tc.expect.code, tc.expect.field)
			if err != nil {
				if cfg != nil {
					t.Fatalf("Resolve returned a config with an error")
				}
				return
			}
			for k := range tc.given {
				if s := cfg.SettingSources[k]; s.Source != ragplane.LayerRequest {
					t.Errorf("%s source = %q, want %q", k, s.Source, ragplane.LayerRequest)
				}
			}
		})
	}
}

func TestResolveChunkOverlap(t *testing.T) {
	type given struct{ plan, tenant ragplane.Overrides }
	type expect struct {
		code  string
		field string
	}
	tests := []struct {
		name   string
		given  given
		expect expect
	}{
		{name: "defaults", given: given{}},
		{name: "overlap one below size", given: given{tenant: ragplane.Overrides{"chunk_size": 64, "chunk_overlap": 63}}},
		{name: "no overlap", given: given{plan: ragplane.Overrides{"chunk_overlap": 0}}},
		{
			name:   "overlap equal to size",
			given:  given{tenant: ragplane.Overrides{"chunk_size": 64, "chunk_overlap": 64}},
			expect: expect{ragplane.EINVALID, "settings.chunk_overlap"},
		},
		{
			name:   "overlap above size",
			given:  given{plan: ragplane.Overrides{"chunk_overlap": 4096}},
			expect: expect{ragplane.EINVALID, "settings.chunk_overlap"},
		},
		{
			name:   "tenant shrinks size below the system overlap",
			given:  given{tenant: ragplane.Overrides{"chunk_size": 32}},
			expect: expect{ragplane.EINVALID, "settings.chunk_overlap"},
		},
		{
			name:   "tenant overlap above plan size",
			given:  given{plan: ragplane.Overrides{"chunk_size": 100}, tenant: ragplane.Overrides{"chunk_overlap": 200}},
			expect: expect{ragplane.EINVALID, "settings.chunk_overlap"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := MustLayer(t, ragplane.ConfigLayer{Settings: tc.given.plan})
			tenant := MustLayer(t, ragplane.ConfigLayer{Settings: tc.given.tenant})
			cfg, err := ragplane.Resolve(systemLayer(), plan, tenant, nil)
			assertErr(t, err, tc.expect.code, tc.expect.field)
			if err == nil && cfg.Settings.ChunkOverlap >= cfg.Settings.ChunkSize {
				t.Fatalf("resolved overlap %d >= size %d", cfg.Settings.ChunkOverlap, cfg.Settings.ChunkSize)
			}
		})
	}
}

func TestResolveMissingSystemSetting(t *testing.T) {
	tests := []struct {
		name   string
		given  string // the setting removed from the system layer
		expect string
	}{
		{name: "chunk_size", given: "chunk_size", expect: ragplane.EINTERNAL},
		{name: "model_tier", given: "model_tier", expect: ragplane.EINTERNAL},
		{name: "embedding_model", given: "embedding_model", expect: ragplane.EINTERNAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			system := systemLayer()
			delete(system.Settings, tc.given)
			_, err := ragplane.Resolve(system, ragplane.ConfigLayer{}, ragplane.ConfigLayer{}, nil)
			assertErr(t, err, tc.expect, "")
		})
	}
}

func TestResolveTypedMatchesSources(t *testing.T) {
	type given struct {
		plan, tenant ragplane.ConfigLayer
		request      ragplane.Overrides
	}
	tests := []struct {
		name     string
		given    given
		expect   ragplane.Settings // spot checks of the typed values
		expectLS ragplane.Limits
	}{
		{
			name:     "system defaults",
			expect:   ragplane.Settings{TopK: 5, MaxTokensPerQuery: 1024, ModelTier: "standard", Temperature: 0.2, ChunkSize: 256, ChunkOverlap: 32, EmbeddingDimension: 512},
			expectLS: ragplane.Limits{MaxTopK: 20, MaxTokensPerQuery: 2048, MaxModelTier: "standard", RequestsPerSecond: 5, Burst: 10, MonthlyTokens: 1_000_000},
		},
		{
			name: "every layer and clamping",
			given: given{
				plan: ragplane.ConfigLayer{
					Settings: ragplane.Overrides{"chunk_size": 1024, "embedding_provider": "openai", "embedding_model": "text-embedding-3-small"},
					Limits:   ragplane.Overrides{"max_top_k": 8, "monthly_tokens": 1e12, "requests_per_second": 0.5},
				},
				tenant: ragplane.ConfigLayer{
					Settings: ragplane.Overrides{"chunk_overlap": 100, "embedding_dimension": 1536, "temperature": nil},
					Limits:   ragplane.Overrides{"max_model_tier": "small", "max_tokens_per_query": 4096},
				},
				request: ragplane.Overrides{"top_k": json.Number("50"), "model_tier": "large", "max_tokens_per_query": 3000, "temperature": 1.25},
			},
			expect:   ragplane.Settings{TopK: 8, MaxTokensPerQuery: 3000, ModelTier: "small", Temperature: 1.25, ChunkSize: 1024, ChunkOverlap: 100, EmbeddingDimension: 1536},
			expectLS: ragplane.Limits{MaxTopK: 8, MaxTokensPerQuery: 4096, MaxModelTier: "small", RequestsPerSecond: 0.5, Burst: 10, MonthlyTokens: 1_000_000_000_000},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := MustResolve(t, tc.given.plan, tc.given.tenant, tc.given.request)
			checkTypedMatchesSources(t, cfg)
			s, l := cfg.Settings, cfg.Limits
			if s.TopK != tc.expect.TopK || s.MaxTokensPerQuery != tc.expect.MaxTokensPerQuery ||
				s.ModelTier != tc.expect.ModelTier || s.Temperature != tc.expect.Temperature ||
				s.ChunkSize != tc.expect.ChunkSize || s.ChunkOverlap != tc.expect.ChunkOverlap ||
				s.EmbeddingDimension != tc.expect.EmbeddingDimension {
				t.Errorf("settings = %+v, want %+v", s, tc.expect)
			}
			if l.MaxTopK != tc.expectLS.MaxTopK || l.MaxTokensPerQuery != tc.expectLS.MaxTokensPerQuery ||
				l.MaxModelTier != tc.expectLS.MaxModelTier || l.RequestsPerSecond != tc.expectLS.RequestsPerSecond ||
				l.Burst != tc.expectLS.Burst || l.MonthlyTokens != tc.expectLS.MonthlyTokens {
				t.Errorf("limits = %+v, want %+v", l, tc.expectLS)
			}
		})
	}
}

func TestSystemDefaults(t *testing.T) {
	tests := []struct {
		name   string
		given  func() ragplane.Overrides
		when   func(string, ragplane.Overrides) error
		expect []ragplane.FieldDoc // every documented key must have a default
	}{
		{name: "settings", given: ragplane.SystemSettings, when: ragplane.ValidateSettings, expect: ragplane.SettingDocs()},
		{name: "limits", given: ragplane.SystemLimits, when: ragplane.ValidateLimits, expect: ragplane.LimitDocs()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.given()
			assertErr(t, tc.when("system", o), "", "")
			if !reflect.DeepEqual(o, tc.given()) {
				t.Errorf("validation changed the already normalised defaults: %#v", o)
			}
			keys := make([]string, 0, len(o))
			for k := range o {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if want := docKeys(tc.expect); !slices.Equal(keys, want) {
				t.Errorf("default keys = %v, documented keys = %v", keys, want)
			}
		})
	}

	t.Run("resolve", func(t *testing.T) {
		cfg, err := ragplane.Resolve(systemLayer(), ragplane.ConfigLayer{}, ragplane.ConfigLayer{}, nil)
		assertErr(t, err, "", "")
		for k, s := range cfg.SettingSources {
			if s.Source != ragplane.LayerSystem || s.Clamped {
				t.Errorf("setting %s = %+v, want unclamped from system", k, s)
			}
		}
		for k, s := range cfg.LimitSources {
			if s.Source != ragplane.LayerSystem || s.Clamped {
				t.Errorf("limit %s = %+v, want unclamped from system", k, s)
			}
		}
		checkTypedMatchesSources(t, cfg)
	})
}

func TestValidateSettings(t *testing.T) {
	type when struct{ prefix string }
	type expect struct {
		code  string
		field string
		value ragplane.Overrides // the normalised map on success
	}
	tests := []struct {
		name   string
		given  ragplane.Overrides
		when   when
		expect expect
	}{
		// Accepted and normalised.
		{name: "nil map", given: nil, when: when{"settings"}},
		{
			name:   "int becomes int64",
			given:  ragplane.Overrides{"top_k": 7},
			when:   when{"settings"},
			expect: expect{value: ragplane.Overrides{"top_k": int64(7)}},
		},
		{
			name:   "whole float64 becomes int64",
			given:  ragplane.Overrides{"chunk_size": float64(512)},
			when:   when{"settings"},
			expect: expect{value: ragplane.Overrides{"chunk_size": int64(512)}},
		},
		{
			name:   "a model name stands for its tier",
			given:  ragplane.Overrides{"model_tier": "GPT-4o-mini"},
			when:   when{"settings"},
			expect: expect{value: ragplane.Overrides{"model_tier": "small"}},
		},
		{
			name:   "an unknown model name is refused",
			given:  ragplane.Overrides{"model_tier": "gpt-9000"},
			when:   when{"settings"},
			expect: expect{code: ragplane.EINVALID, field: "settings.model_tier"},
		},
		{
			name:   "json.Number int",
			given:  ragplane.Overrides{"top_k": json.Number("12")},
			when:   when{"settings"},
			expect: expect{value: ragplane.Overrides{"top_k": int64(12)}},
		},
		{
			name:   "json.Number exponent int",
			given:  ragplane.Overrides{"max_tokens_per_query": json.Number("1e3")},
			when:   when{"settings"},
			expect: expect{value: ragplane.Overrides{"max_tokens_per_query": int64(1000)}},
		},
		{
			name:   "json.Number float",
			given:  ragplane.Overrides{"temperature": json.Number("0.75")},
			when:   when{"settings"},
			expect: expect{value: ragplane.Overrides{"temperature": 0.75}},
		},
		{
			name:   "int64 float becomes float64",
			given:  ragplane.Overrides{"temperature": int64(2)},
			when:   when{"settings"},
			expect: expect{value: ragplane.Overrides{"temperature": float64(2)}},
		},
		{
			name:   "bounds are inclusive",
			given:  ragplane.Overrides{"top_k": 100, "chunk_size": 32, "chunk_overlap": 0, "temperature": 0, "embedding_dimension": 2000},
			when:   when{"settings"},
			expect: expect{value: ragplane.Overrides{"top_k": int64(100), "chunk_size": int64(32), "chunk_overlap": int64(0), "temperature": float64(0), "embedding_dimension": int64(2000)}},
		},
		{
			name:   "nil value kept as unset",
			given:  ragplane.Overrides{"top_k": nil, "chunk_size": 300},
			when:   when{"settings"},
			expect: expect{value: ragplane.Overrides{"top_k": nil, "chunk_size": int64(300)}},
		},
		{
			name:   "enum and string",
			given:  ragplane.Overrides{"retrieval_mode": "graph", "model_tier": "large", "embedding_provider": "openai", "embedding_model": "text-embedding-3-small"},
			when:   when{"settings"},
			expect: expect{value: ragplane.Overrides{"retrieval_mode": "graph", "model_tier": "large", "embedding_provider": "openai", "embedding_model": "text-embedding-3-small"}},
		},

		// Rejected.
		{name: "unknown key", given: ragplane.Overrides{"topk": 5}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.topk"}},
		{name: "limit key", given: ragplane.Overrides{"max_top_k": 5}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.max_top_k"}},
		{name: "string for int", given: ragplane.Overrides{"top_k": "5"}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.top_k"}},
		{name: "bool for int", given: ragplane.Overrides{"top_k": true}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.top_k"}},
		{name: "string for float", given: ragplane.Overrides{"temperature": "0.5"}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.temperature"}},
		{name: "non-integer for int", given: ragplane.Overrides{"top_k": 5.5}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.top_k"}},
		{name: "non-integer json.Number for int", given: ragplane.Overrides{"chunk_size": json.Number("256.1")}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.chunk_size"}},
		{name: "garbage json.Number", given: ragplane.Overrides{"top_k": json.Number("five")}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.top_k"}},
		{name: "below min", given: ragplane.Overrides{"top_k": 0}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.top_k"}},
		{name: "above max", given: ragplane.Overrides{"top_k": 101}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.top_k"}},
		{name: "chunk_size below min", given: ragplane.Overrides{"chunk_size": 31}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.chunk_size"}},
		{name: "temperature above max", given: ragplane.Overrides{"temperature": 2.01}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.temperature"}},
		{name: "negative overlap", given: ragplane.Overrides{"chunk_overlap": -1}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.chunk_overlap"}},
		{name: "negative temperature", given: ragplane.Overrides{"temperature": -0.1}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.temperature"}},
		{name: "negative int64", given: ragplane.Overrides{"max_tokens_per_query": int64(-1024)}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.max_tokens_per_query"}},
		{name: "absurd chunk_size", given: ragplane.Overrides{"chunk_size": 1e12}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.chunk_size"}},
		{name: "absurd max_tokens_per_query", given: ragplane.Overrides{"max_tokens_per_query": int64(math.MaxInt64)}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.max_tokens_per_query"}},
		{name: "absurd embedding_dimension", given: ragplane.Overrides{"embedding_dimension": json.Number("1e12")}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.embedding_dimension"}},
		{name: "NaN float", given: ragplane.Overrides{"temperature": math.NaN()}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.temperature"}},
		{name: "NaN for int", given: ragplane.Overrides{"top_k": math.NaN()}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.top_k"}},
		{name: "NaN json.Number", given: ragplane.Overrides{"temperature": json.Number("NaN")}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.temperature"}},
		{name: "+Inf", given: ragplane.Overrides{"top_k": math.Inf(1)}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.top_k"}},
		{name: "-Inf", given: ragplane.Overrides{"temperature": math.Inf(-1)}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.temperature"}},
		{name: "overflowing json.Number", given: ragplane.Overrides{"temperature": json.Number("1e400")}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.temperature"}},
		{name: "enum not in list", given: ragplane.Overrides{"retrieval_mode": "semantic"}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.retrieval_mode"}},
		{name: "enum wrong case", given: ragplane.Overrides{"model_tier": "Large"}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.model_tier"}},
		{name: "enum not a string", given: ragplane.Overrides{"model_tier": 2}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.model_tier"}},
		{name: "empty string", given: ragplane.Overrides{"embedding_model": ""}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.embedding_model"}},
		{name: "string too long", given: ragplane.Overrides{"embedding_model": strings.Repeat("m", 201)}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.embedding_model"}},
		{name: "number for string", given: ragplane.Overrides{"embedding_model": 3}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.embedding_model"}},
		{name: "object value", given: ragplane.Overrides{"top_k": map[string]any{"value": 5}}, when: when{"settings"}, expect: expect{code: ragplane.EINVALID, field: "settings.top_k"}},
		{name: "prefix is used", given: ragplane.Overrides{"top_k": 0}, when: when{"plan.settings"}, expect: expect{code: ragplane.EINVALID, field: "plan.settings.top_k"}},
		{
			name:   "first bad key in sorted order",
			given:  ragplane.Overrides{"top_k": 0, "chunk_size": 0, "temperature": 9},
			when:   when{"settings"},
			expect: expect{code: ragplane.EINVALID, field: "settings.chunk_size"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertErr(t, ragplane.ValidateSettings(tc.when.prefix, tc.given), tc.expect.code, tc.expect.field)
			if tc.expect.value != nil && !reflect.DeepEqual(tc.given, tc.expect.value) {
				t.Fatalf("normalised = %#v, want %#v", tc.given, tc.expect.value)
			}
		})
	}
}

func TestValidateLimits(t *testing.T) {
	type when struct{ prefix string }
	type expect struct {
		code  string
		field string
		value ragplane.Overrides // the normalised map on success
	}
	tests := []struct {
		name   string
		given  ragplane.Overrides
		when   when
		expect expect
	}{
		// Accepted and normalised.
		{name: "empty", given: ragplane.Overrides{}, when: when{"limits"}, expect: expect{value: ragplane.Overrides{}}},
		{
			name:   "ints become int64",
			given:  ragplane.Overrides{"burst": 20, "max_top_k": float64(50), "queries_per_hour": json.Number("5000")},
			when:   when{"limits"},
			expect: expect{value: ragplane.Overrides{"burst": int64(20), "max_top_k": int64(50), "queries_per_hour": int64(5000)}},
		},
		{
			name:   "float limit",
			given:  ragplane.Overrides{"requests_per_second": json.Number("0.01")},
			when:   when{"limits"},
			expect: expect{value: ragplane.Overrides{"requests_per_second": 0.01}},
		},
		{
			name:   "int for float limit becomes float64",
			given:  ragplane.Overrides{"requests_per_second": 100},
			when:   when{"limits"},
			expect: expect{value: ragplane.Overrides{"requests_per_second": float64(100)}},
		},
		{
			name:   "largest monthly_tokens",
			given:  ragplane.Overrides{"monthly_tokens": 1e12},
			when:   when{"limits"},
			expect: expect{value: ragplane.Overrides{"monthly_tokens": int64(1_000_000_000_000)}},
		},
		{
			name:   "max_request_bytes bounds",
			given:  ragplane.Overrides{"max_request_bytes": 1 << 30},
			when:   when{"limits"},
			expect: expect{value: ragplane.Overrides{"max_request_bytes": int64(1 << 30)}},
		},
		{
			name:   "enum and nil",
			given:  ragplane.Overrides{"max_model_tier": "large", "burst": nil},
			when:   when{"limits"},
			expect: expect{value: ragplane.Overrides{"max_model_tier": "large", "burst": nil}},
		},

		// Rejected.
		{name: "unknown key", given: ragplane.Overrides{"max_users": 5}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.max_users"}},
		{name: "setting key", given: ragplane.Overrides{"top_k": 5}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.top_k"}},
		{name: "string for int", given: ragplane.Overrides{"burst": "10"}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.burst"}},
		{name: "non-integer for int", given: ragplane.Overrides{"max_documents": 10.5}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.max_documents"}},
		{name: "below min", given: ragplane.Overrides{"burst": 0}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.burst"}},
		{name: "float below min", given: ragplane.Overrides{"requests_per_second": 0.001}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.requests_per_second"}},
		{name: "above max", given: ragplane.Overrides{"max_top_k": 101}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.max_top_k"}},
		{name: "max_request_bytes below min", given: ragplane.Overrides{"max_request_bytes": 1023}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.max_request_bytes"}},
		{name: "negative", given: ragplane.Overrides{"max_documents": -1}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.max_documents"}},
		{name: "negative float", given: ragplane.Overrides{"requests_per_second": -5.0}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.requests_per_second"}},
		{name: "absurd max_storage_mb", given: ragplane.Overrides{"max_storage_mb": 1e12}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.max_storage_mb"}},
		{name: "absurd max_request_bytes", given: ragplane.Overrides{"max_request_bytes": json.Number("1e12")}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.max_request_bytes"}},
		{name: "monthly_tokens just above max", given: ragplane.Overrides{"monthly_tokens": int64(1_000_000_000_001)}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.monthly_tokens"}},
		{name: "NaN", given: ragplane.Overrides{"requests_per_second": math.NaN()}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.requests_per_second"}},
		{name: "NaN for int", given: ragplane.Overrides{"queries_per_hour": math.NaN()}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.queries_per_hour"}},
		{name: "+Inf", given: ragplane.Overrides{"monthly_tokens": math.Inf(1)}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.monthly_tokens"}},
		{name: "enum not in list", given: ragplane.Overrides{"max_model_tier": "xl"}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.max_model_tier"}},
		{name: "enum empty", given: ragplane.Overrides{"max_model_tier": ""}, when: when{"limits"}, expect: expect{code: ragplane.EINVALID, field: "limits.max_model_tier"}},
		{name: "prefix is used", given: ragplane.Overrides{"burst": 0}, when: when{"tenant.limits"}, expect: expect{code: ragplane.EINVALID, field: "tenant.limits.burst"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertErr(t, ragplane.ValidateLimits(tc.when.prefix, tc.given), tc.expect.code, tc.expect.field)
			if tc.expect.value != nil && !reflect.DeepEqual(tc.given, tc.expect.value) {
				t.Fatalf("normalised = %#v, want %#v", tc.given, tc.expect.value)
			}
		})
	}
}
