package controlplane

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane/catalog"
)

// catalogCollector reports tenants by status and provider, read from the catalog at scrape time,
// so every replica reports the same numbers whichever one made the changes.
type catalogCollector struct {
	store   *catalog.Store
	tenants *prometheus.Desc
	up      *prometheus.Desc
}

func newCatalogCollector(store *catalog.Store) *catalogCollector {
	return &catalogCollector{
		store: store,
		tenants: prometheus.NewDesc("ragplane_controlplane_tenants",
			"Tenants in the catalog by status and provider.", []string{"status", "provider"}, nil),
		up: prometheus.NewDesc("ragplane_controlplane_catalog_up",
			"1 if the catalog answered the last scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.tenants
	ch <- c.up
}

// Collect implements prometheus.Collector.
func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.store.CountTenants(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.tenants, prometheus.GaugeValue, float64(n.Count), string(n.Status), string(n.Provider))
	}
}
