package proxy_test

import (
	"encoding/json"
	"os"
	"testing"
)

func jsonMarshal(v any) ([]byte, error) {
	if s, ok := v.(string); ok {
		return []byte(s), nil
	}
	return json.Marshal(v)
}

func e2etestRedis(t *testing.T) string {
	t.Helper()
	u := os.Getenv("REDIS_URL")
	if u == "" {
		t.Fatal("REDIS_URL is not set")
	}
	return u
}
