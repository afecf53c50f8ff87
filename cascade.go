package ragplane

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
)

// Overrides is one layer of the config cascade: a partial map from setting or limit key to value.
// Values are int64, float64 or string once normalised by Validate*; JSON numbers are accepted.
type Overrides map[string]any

// Layer names a level of the cascade.
type Layer string

// Cascade layers, lowest first.
const (
	LayerSystem  Layer = "system"
	LayerPlan    Layer = "plan"
	LayerTenant  Layer = "tenant"
	LayerRequest Layer = "request"
)

// ConfigLayer holds the setting and limit overrides of one layer.
type ConfigLayer struct {
	Settings Overrides `json:"settings"`
	Limits   Overrides `json:"limits"`
}

// Sourced is an effective value and the layer it came from. Clamped is true when a higher layer
// asked for more than a limit allows and the value was cut down to the limit.
type Sourced struct {
	Value   any   `json:"value"`
	Source  Layer `json:"source"`
	Clamped bool  `json:"clamped,omitempty"`
}

// Config is a tenant's effective configuration.
type Config struct {
	// Settings and Limits are the typed effective values.
	Settings Settings `json:"-"`
	Limits   Limits   `json:"-"`
	// SettingSources and LimitSources give each key's value and the layer it came from.
	SettingSources map[string]Sourced `json:"settings"`
	LimitSources   map[string]Sourced `json:"limits"`
}

// Resolve computes the effective configuration from the system, plan and tenant layers and the
// per-request setting overrides (which may be nil). Each layer must have been validated. Settings
// that a limit bounds (top_k, max_tokens_per_query, model_tier) are clamped to it whatever layer
// set them. The result is rejected with EINVALID if it is inconsistent (chunk_overlap must be less
// than chunk_size).
func Resolve(system, plan, tenant ConfigLayer, request Overrides) (*Config, error) {
	request = maps.Clone(request) // validation normalises in place; the caller's map stays as given
	if err := ValidateRequestSettings("override_config", request); err != nil {
		return nil, err
	}
	cfg := &Config{
		SettingSources: overlay(settingFields, []Overrides{system.Settings, plan.Settings, tenant.Settings, request}),
		LimitSources:   overlay(limitFields, []Overrides{system.Limits, plan.Limits, tenant.Limits, nil}),
	}
	for _, f := range limitFields {
		if _, ok := cfg.LimitSources[f.Key]; !ok {
			return nil, Errorf(EINTERNAL, "limit %s has no system default", f.Key)
		}
	}
	for _, f := range settingFields {
		if _, ok := cfg.SettingSources[f.Key]; !ok {
			return nil, Errorf(EINTERNAL, "setting %s has no system default", f.Key)
		}
		if f.ClampBy == "" {
			continue
		}
		s, limit := cfg.SettingSources[f.Key], cfg.LimitSources[f.ClampBy].Value
		if f.exceeds(s.Value, limit) {
			s.Value, s.Clamped = limit, true
			cfg.SettingSources[f.Key] = s
		}
	}
	if err := decodeSourced(cfg.SettingSources, &cfg.Settings); err != nil {
		return nil, err
	}
	if err := decodeSourced(cfg.LimitSources, &cfg.Limits); err != nil {
		return nil, err
	}
	if cfg.Settings.ChunkOverlap >= cfg.Settings.ChunkSize {
		return nil, FieldErrorf("settings.chunk_overlap", "chunk_overlap (%d) must be less than chunk_size (%d).",
			cfg.Settings.ChunkOverlap, cfg.Settings.ChunkSize)
	}
	return cfg, nil
}

var layerOrder = []Layer{LayerSystem, LayerPlan, LayerTenant, LayerRequest}

func overlay(fields []field, layers []Overrides) map[string]Sourced {
	out := make(map[string]Sourced, len(fields))
	for i, o := range layers {
		for _, f := range fields {
			if v, ok := o[f.Key]; ok && v != nil {
				out[f.Key] = Sourced{Value: v, Source: layerOrder[i]}
			}
		}
	}
	return out
}

func decodeSourced(src map[string]Sourced, dst any) error {
	flat := make(map[string]any, len(src))
	for k, s := range src {
		flat[k] = s.Value
	}
	b, err := json.Marshal(flat)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	return nil
}

type kind int

const (
	kindInt kind = iota
	kindFloat
	kindEnum
	kindString
)

// field describes one setting or limit.
type field struct {
	Key      string
	Kind     kind
	Min, Max float64
	Enum     []string
	// Aliases maps other names an enum accepts to the enum value they stand for (model names
	// for model tiers); the normal form is the enum value.
	Aliases    map[string]string
	PerRequest bool   // a request may override it
	Fixed      bool   // set once, when the tenant is provisioned
	ClampBy    string // the limit that bounds it
	Doc        string
	// Check, if set, replaces a string field's 1-200 character rule: it returns the value in
	// normal form, or a non-empty problem, the error message (the empty string may be valid).
	Check func(string) (norm, problem string)
}

// exceeds reports whether value v is above limit. Values that are not of the field's type never
// exceed (validation rejects them before they get here).
func (f field) exceeds(v, limit any) bool {
	if f.Kind == kindEnum {
		vs, ok1 := v.(string)
		ls, ok2 := limit.(string)
		return ok1 && ok2 && slices.Index(f.Enum, vs) > slices.Index(f.Enum, ls)
	}
	vf, ok1 := toFloat(v)
	lf, ok2 := toFloat(limit)
	return ok1 && ok2 && vf > lf
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case json.Number:
		x, err := n.Float64()
		return x, err == nil
	}
	return 0, false
}

// normalise checks v against the field and returns it as int64, float64 or string.
func (f field) normalise(name string, v any) (any, error) {
	switch f.Kind {
	case kindInt, kindFloat:
		x, ok := toFloat(v)
		if !ok || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, FieldErrorf(name, "Must be a number.")
		}
		if f.Kind == kindInt && x != math.Trunc(x) {
			return nil, FieldErrorf(name, "Must be a whole number.")
		}
		if x < f.Min || x > f.Max {
			return nil, FieldErrorf(name, "Must be between %v and %v.", f.Min, f.Max)
		}
		if f.Kind == kindInt {
			return int64(x), nil
		}
		return x, nil
	case kindEnum:
		s, ok := v.(string)
		if alias, found := f.Aliases[strings.ToLower(s)]; ok && found {
			s = alias
		}
		if !ok || !slices.Contains(f.Enum, s) {
			if len(f.Aliases) > 0 {
				return nil, FieldErrorf(name, "Must be one of %v or a model name of a tier (%s).", f.Enum, strings.Join(slices.Sorted(maps.Keys(f.Aliases)), ", "))
			}
			return nil, FieldErrorf(name, "Must be one of %v.", f.Enum)
		}
		return s, nil
	default:
		s, ok := v.(string)
		if ok && f.Check != nil {
			norm, problem := f.Check(s)
			if problem != "" {
				return nil, FieldErrorf(name, "%s", problem)
			}
			return norm, nil
		}
		if !ok || s == "" || len(s) > 200 {
			return nil, FieldErrorf(name, "Must be a string of 1-200 characters.")
		}
		return s, nil
	}
}

// validateOverrides normalises o in place. A nil value means "remove the override" and is kept.
func validateOverrides(prefix string, fields []field, o Overrides, perRequest bool) error {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the first bad key deterministically
	for _, k := range keys {
		name := prefix + "." + k
		i := slices.IndexFunc(fields, func(f field) bool { return f.Key == k })
		if i < 0 {
			return FieldErrorf(name, "Unknown key %q.", k)
		}
		f := fields[i]
		if perRequest && !f.PerRequest {
			return FieldErrorf(name, "%q cannot be overridden per request.", k)
		}
		if o[k] == nil {
			if perRequest {
				return FieldErrorf(name, "Must not be null.")
			}
			continue
		}
		v, err := f.normalise(name, o[k])
		if err != nil {
			return err
		}
		o[k] = v
	}
	return nil
}

// ClampedBy names the limit that bounds setting key ("" when none does).
func ClampedBy(key string) string {
	for _, f := range settingFields {
		if f.Key == key {
			return f.ClampBy
		}
	}
	return ""
}

// FieldDoc describes one setting or limit for documentation and the API.
type FieldDoc struct {
	Key        string   `json:"key"`
	Type       string   `json:"type"`
	Min        *float64 `json:"min,omitempty"`
	Max        *float64 `json:"max,omitempty"`
	Enum       []string `json:"enum,omitempty"`
	PerRequest bool     `json:"per_request,omitempty"`
	Fixed      bool     `json:"fixed,omitempty"`
	ClampedBy  string   `json:"clamped_by,omitempty"`
	Doc        string   `json:"doc"`
}

// SettingDocs and LimitDocs describe every setting and limit.
func SettingDocs() []FieldDoc { return docs(settingFields) }

// LimitDocs describes every limit.
func LimitDocs() []FieldDoc { return docs(limitFields) }

func docs(fields []field) []FieldDoc {
	out := make([]FieldDoc, 0, len(fields))
	for _, f := range fields {
		d := FieldDoc{Key: f.Key, Enum: f.Enum, PerRequest: f.PerRequest, Fixed: f.Fixed, ClampedBy: f.ClampBy, Doc: f.Doc}
		switch f.Kind {
		case kindInt, kindFloat:
			d.Type = map[kind]string{kindInt: "integer", kindFloat: "number"}[f.Kind]
			lo, hi := f.Min, f.Max
			d.Min, d.Max = &lo, &hi
		default:
			d.Type = "string"
		}
		out = append(out, d)
	}
	return out
}
