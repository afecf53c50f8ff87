//go:build !race

package controlplane_test

// bulkTenants is the tenant count issue 8 asks a new proxy to sync.
const bulkTenants = 100_000
