package xds

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ragplane/ragplane"
)

var update = flag.Bool("update", false, "rewrite testdata/out from the translator's output")

// TestTranslateGolden translates every testdata/in/*.json and compares with testdata/out.
func TestTranslateGolden(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("testdata", "in", "*.json"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			given := MustReadInput(t, in)
			res, err := Translate(given)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			if err := Check(res); err != nil {
				t.Fatalf("Check: %v", err)
			}
			got := MustRender(t, res)
			out := filepath.Join("testdata", "out", name+".json")
			if *update {
				if err := os.WriteFile(out, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the translator's output (go test -update rewrites it); got:\n%s", out, got)
			}
		})
	}
}

// TestTenantPolicyRoundTrip checks the contract the proxy relies on: the Struct decodes back
// into the same ragplane.TenantPolicy with encoding/json.
func TestTenantPolicyRoundTrip(t *testing.T) {
	in := MustReadInput(t, filepath.Join("testdata", "in", "basic.json"))
	res, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range in.Policies {
		s, ok := res.Types[TypeTenantPolicy][string(want.TenantID)].(*structpb.Struct)
		if !ok {
			t.Fatalf("no policy for %s", want.TenantID)
		}
		b, err := protojson.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var got ragplane.TenantPolicy
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %s: got %+v, want %+v", want.TenantID, got, want)
		}
	}
}

func TestTranslateErrors(t *testing.T) {
	tests := []struct {
		name   string
		given  Input
		expect string
	}{
		{name: "no issuer", given: Input{Audience: "a"}, expect: ragplane.EINVALID},
		{name: "no audience", given: Input{Issuer: "i"}, expect: ragplane.EINVALID},
		{name: "minimal", given: Input{Issuer: "i", Audience: "a"}, expect: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Translate(tt.given)
			if got := ragplane.ErrorCode(err); got != tt.expect {
				t.Errorf("code %q, want %q (%v)", got, tt.expect, err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		when   func(r *Resources)
		expect bool // consistent
	}{
		{name: "translated", when: func(*Resources) {}, expect: true},
		{name: "EDS cluster without assignment", when: func(r *Resources) {
			delete(r.Types[TypeEndpoint], DataplaneCluster)
		}, expect: false},
		{name: "name differs from the resource's", when: func(r *Resources) {
			r.Types[TypeCluster]["other"] = r.Types[TypeCluster][DataplaneCluster]
		}, expect: false},
		{name: "wrong message for the type", when: func(r *Resources) {
			r.Types[TypeEndpoint]["x"] = &clusterv3.Cluster{Name: "x"}
		}, expect: false},
		{name: "type not served", when: func(r *Resources) {
			r.Types["type.googleapis.com/google.protobuf.Empty"] = map[string]proto.Message{}
		}, expect: false},
		{name: "rate limit without prefix", when: func(r *Resources) {
			rl := r.Types[TypeRateLimit][RateLimitPrefix+"acme"]
			r.Types[TypeRateLimit]["acme"] = rl
		}, expect: false},
		{name: "policy of another tenant", when: func(r *Resources) {
			r.Types[TypeTenantPolicy]["zeta"] = r.Types[TypeTenantPolicy]["acme"]
		}, expect: false},
		{name: "invalid envoy resource", when: func(r *Resources) {
			r.Types[TypeEndpoint][DataplaneCluster].(*endpointv3.ClusterLoadAssignment).ClusterName = ""
		}, expect: false},
		{name: "empty name", when: func(r *Resources) {
			r.Types[TypeJWTProvider][""] = r.Types[TypeJWTProvider][JWTProviderName]
		}, expect: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Translate(MustReadInput(t, filepath.Join("testdata", "in", "basic.json")))
			if err != nil {
				t.Fatal(err)
			}
			tt.when(&r)
			if err := Check(r); (err == nil) != tt.expect {
				t.Errorf("Check = %v, want consistent=%t", err, tt.expect)
			}
		})
	}
}

// MustReadInput decodes a golden input file.
func MustReadInput(tb testing.TB, path string) Input {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var in Input
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return in
}

// MustRender renders resources as stable, indented JSON: protojson per resource (its whitespace
// is deliberately unstable, so it is re-indented), maps in key order.
func MustRender(tb testing.TB, r Resources) []byte {
	tb.Helper()
	types := map[string]map[string]json.RawMessage{}
	for typeURL, byName := range r.Types {
		types[typeURL] = map[string]json.RawMessage{}
		for name, msg := range byName {
			b, err := protojson.Marshal(msg)
			if err != nil {
				tb.Fatalf("%s %s: %v", typeURL, name, err)
			}
			types[typeURL][name] = b
		}
	}
	warnings := r.Warnings
	if warnings == nil {
		warnings = []string{}
	}
	out, err := json.MarshalIndent(map[string]any{"resources": types, "warnings": warnings}, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	return append(out, '\n')
}
