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
			[]string{"REDIS_URL", "RAGPLANE_INTERNAL_KEY", "RAGPLANE_XDS_ADDR", "RAGPLANE_CONTROLPLANE_URL"}, "RAGPLANE_PROXY_ADDR"},
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

// TestKubernetesManifests checks ops/k8s: every container runs a ragplane subcommand with only
// variables it reads (plus pod fields), probes, resource requests, and a non-root, locked-down
// security context; the control plane has two replicas and every workload a disruption budget.
func TestKubernetesManifests(t *testing.T) {
	vars := map[string]map[string]bool{
		"controlplane": readVars(func(g func(string) string) { controlplane.ConfigFromEnv(g) }),
		"dataplane":    readVars(func(g func(string) string) { dataplane.ConfigFromEnv(g) }),
		"proxy":        readVars(func(g func(string) string) { proxy.ConfigFromEnv(g) }),
	}
	type container struct {
		Name string   `yaml:"name"`
		Args []string `yaml:"args"`
		Env  []struct {
			Name string `yaml:"name"`
		} `yaml:"env"`
		LivenessProbe   map[string]any `yaml:"livenessProbe"`
		ReadinessProbe  map[string]any `yaml:"readinessProbe"`
		Resources       map[string]any `yaml:"resources"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		} `yaml:"securityContext"`
	}
	type object struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			Replicas int `yaml:"replicas"`
			Template struct {
				Spec struct {
					SecurityContext struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
					} `yaml:"securityContext"`
					Containers []container `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	var objs []object
	for _, f := range []string{"controlplane.yaml", "dataplane.yaml", "proxy.yaml", "../sidecar/dataplane-sidecar.yaml"} {
		data, err := os.ReadFile("../../ops/k8s/base/" + f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		for {
			var o object
			if err := dec.Decode(&o); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			objs = append(objs, o)
		}
	}
	pdbs := map[string]bool{}
	deployments := map[string]object{}
	for _, o := range objs {
		switch o.Kind {
		case "PodDisruptionBudget":
			pdbs[o.Metadata.Name] = true
		case "Deployment":
			deployments[o.Metadata.Name] = o
			for _, c := range o.Spec.Template.Spec.Containers {
				where := o.Metadata.Name + "/" + c.Name
				if len(c.Args) != 1 || vars[c.Args[0]] == nil {
					t.Errorf("%s: args %v are not a ragplane service", where, c.Args)
					continue
				}
				for _, e := range c.Env {
					if !vars[c.Args[0]][e.Name] && !strings.HasPrefix(e.Name, "POD_") {
						t.Errorf("%s: sets %s, which `ragplane %s` does not read", where, e.Name, c.Args[0])
					}
				}
				if c.LivenessProbe == nil || c.ReadinessProbe == nil || c.Resources["requests"] == nil {
					t.Errorf("%s: needs liveness and readiness probes and resource requests", where)
				}
				if c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
					t.Errorf("%s: must not allow privilege escalation", where)
				}
			}
			if o.Spec.Replicas > 0 && !o.Spec.Template.Spec.SecurityContext.RunAsNonRoot {
				t.Errorf("%s: pods must run as non-root", o.Metadata.Name)
			}
		}
	}
	if deployments["controlplane"].Spec.Replicas != 2 {
		t.Errorf("controlplane replicas = %d, want 2 (one reconciler leader)", deployments["controlplane"].Spec.Replicas)
	}
	for _, d := range []string{"controlplane", "dataplane", "proxy"} {
		if !pdbs[d] {
			t.Errorf("%s has no PodDisruptionBudget", d)
		}
	}
}
