package ratelimit

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// SetHeaders writes d to h as the IETF draft rate-limit fields (draft-ietf-httpapi-ratelimit-headers):
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (seconds until the quota is full
// again), plus Retry-After (seconds) when the request was refused. Seconds are rounded up, so
// a client that waits as told is not refused again for being a few milliseconds early.
func SetHeaders(h http.Header, d Decision) {
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.ResetAfter), 10))
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(max(1, ceilSeconds(d.RetryAfter)), 10))
	}
}

// Headers returns the fields SetHeaders writes.
func Headers(d Decision) http.Header {
	h := make(http.Header, 4)
	SetHeaders(h, d)
	return h
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}
