//go:build race

package controlplane_test

// bulkTenants is smaller under the race detector, still several responses.
const bulkTenants = 12000
