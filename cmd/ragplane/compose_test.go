package main

import (
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/proxy"
)

// readVars returns the environment variables a service's ConfigFromEnv reads.
func readVars(configFromEnv func(func(string) string)) map[string]bool {
	vars := map[string]bool{}
	configFromEnv(func(k string) string { vars[k] = true; return "" })
	return vars
}

// TestComposeFileMatchesTheBinary checks docker-compose.yml against the binary: every ragplane
// service runs a real subcommand, sets only variables that subcommand reads, sets the ones it
// requires, and publishes the port it listens on.
func TestComposeFileMatchesTheBinary(t *testing.T) {
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build       any               `yaml:"build"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	services := map[string]struct {
		vars     map[string]bool
		required []string
		addrVar  string
	}{
		"controlplane": {readVars(func(g func(string) string) { controlplane.ConfigFromEnv(g) }),
			[]string{"DATABASE_URL", "RAGPLANE_ADMIN_TOKEN", "RAGPLANE_SECRET_KEY", "RAGPLANE_INTERNAL_KEY"}, "RAGPLANE_ADMIN_ADDR"},
		"dataplane": {readVars(func(g func(string) string) { dataplane.ConfigFromEnv(g) }),
			[]string{"DATABASE_URL", "RAGPLANE_SECRET_KEY", "RAGPLANE_INTERNAL_KEY", "RAGPLANE_CONTROLPLANE_URL"}, "RAGPLANE_DATAPLANE_ADDR"},
		"proxy": {readVars(func(g func(string) string) { proxy.ConfigFromEnv(g) }),
			[]string{"REDIS_URL", "RAGPLANE_INTERNAL_KEY", "RAGPLANE_XDS_ADDR"}, "RAGPLANE_PROXY_ADDR"},
	}
	root := newRootCommand(nil, os.Getenv)
	seen := map[string]int{}
	for name, svc := range compose.Services {
		if svc.Build == nil {
			continue // third-party images
		}
		if len(svc.Command) != 1 {
			t.Errorf("%s: command %v, want one subcommand", name, svc.Command)
			continue
		}
		sub := svc.Command[0]
		if c, _, err := root.Find([]string{sub}); err != nil || c == root {
			t.Errorf("%s: %q is not a ragplane subcommand", name, sub)
			continue
		}
		spec, ok := services[sub]
		if !ok {
			t.Errorf("%s: unexpected service %q", name, sub)
			continue
		}
		seen[sub]++
		for k := range svc.Environment {
			if !spec.vars[k] {
				t.Errorf("%s: sets %s, which `ragplane %s` does not read", name, k, sub)
			}
		}
		for _, k := range spec.required {
			if svc.Environment[k] == "" {
				t.Errorf("%s: does not set %s, which `ragplane %s` needs", name, k, sub)
			}
		}
		_, port, err := net.SplitHostPort(svc.Environment[spec.addrVar])
		if err != nil {
			t.Errorf("%s: %s = %q is not host:port", name, spec.addrVar, svc.Environment[spec.addrVar])
			continue
		}
		if sub != "dataplane" && !slices.ContainsFunc(svc.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }) {
			t.Errorf("%s: listens on %s but publishes %v", name, port, svc.Ports)
		}
	}
	if seen["controlplane"] != 1 || seen["proxy"] != 1 || seen["dataplane"] < 2 {
		t.Errorf("services: %v, want a control plane, a proxy and two workers", seen)
	}
}
