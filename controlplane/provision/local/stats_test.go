package local_test

import (
	"sort"
	"strconv"
	"testing"
	"time"
)

func nowMS() float64 { return float64(time.Now().UnixNano()) / 1e6 }

func itoa(i int) string { return strconv.Itoa(i) }

// reportPercentiles reports p50 and p95 of latencies in milliseconds.
func reportPercentiles(b *testing.B, ms []float64) {
	b.Helper()
	if len(ms) == 0 {
		return
	}
	sort.Float64s(ms)
	at := func(q float64) float64 { return ms[min(len(ms)-1, int(q*float64(len(ms))))] }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
	b.ReportMetric(0, "ns/op")
}
