// Package dashboards holds Ragplane's Grafana dashboards (plain JSON) and provisioning files. Its
// test runs the services and a real Prometheus, and checks that every panel query returns data and
// that the alert rules in ops/prometheus pass promtool's checks and unit tests.
package dashboards
