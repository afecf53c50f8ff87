// Package tenantctx signs and verifies the tenant context that the proxy sends to data-plane
// workers. A worker trusts tenant identity only when this signature proves the proxy made it: the
// proxy verified the tenant's JWT, and signs who the request acts for, for this method and path,
// now. Clients can never set it: the proxy strips the header from incoming requests.
package tenantctx

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/ragplane/ragplane"
)

// Header carries the signed context from proxy to worker.
const Header = "X-Ragplane-Tenant-Context"

// MinKeyLen is the shortest RAGPLANE_INTERNAL_KEY accepted.
const MinKeyLen = 32

// Context is what the proxy vouches for.
type Context struct {
	// Identity is the tenant, subject and roles from the verified token.
	Identity ragplane.Identity
	// RequestID ties logs across proxy and worker.
	RequestID string
	// IssuedAt is when the proxy signed; workers refuse contexts outside the allowed skew.
	IssuedAt time.Time
	// QueriesLeft is how many more requests the tenant's queries_per_hour allows after this
	// one, from the proxy's admission decision; nil when the proxy did not know (rate limits not
	// enforced while Redis is away). GET /v1/me reports it.
	QueriesLeft *int
}

type payload struct {
	Tenant  string   `json:"t"`
	Subject string   `json:"s"`
	Roles   []string `json:"r"`
	Request string   `json:"q"`
	At      int64    `json:"ts"`
	Method  string   `json:"m"`
	Path    string   `json:"p"`
	Left    *int     `json:"ql,omitempty"`
}

// WorkerToken is the bearer token a data-plane worker presents to the control plane to register:
// derived from the internal key the workers share with the proxies, so no extra secret is needed
// and the key itself never travels.
func WorkerToken(internalKey string) string {
	m := hmac.New(sha256.New, []byte(internalKey))
	m.Write([]byte("ragplane worker registration v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// Codec signs and verifies contexts with HMAC-SHA256 under a shared key.
type Codec struct {
	key []byte
}

// New returns a codec for key, which must be at least MinKeyLen bytes.
func New(key string) (*Codec, error) {
	if len(key) < MinKeyLen {
		return nil, errors.New("tenantctx: the internal key must be at least 32 bytes")
	}
	return &Codec{key: []byte(key)}, nil
}

const version = "v1"

// Sign returns the header value for c on a request with method and path.
func (k *Codec) Sign(c Context, method, path string) string {
	p, _ := json.Marshal(payload{Tenant: string(c.Identity.TenantID), Subject: c.Identity.Subject, Roles: c.Identity.Roles,
		Request: c.RequestID, At: c.IssuedAt.Unix(), Method: method, Path: path, Left: c.QueriesLeft})
	body := version + "." + base64.RawURLEncoding.EncodeToString(p)
	return body + "." + base64.RawURLEncoding.EncodeToString(k.mac(body))
}

func (k *Codec) mac(body string) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// Verify checks a header value for a request with method and path, signed within maxSkew of now.
// Every failure is EUNAUTHORIZED with the same message, so a caller learns nothing from it.
func (k *Codec) Verify(value, method, path string, now time.Time, maxSkew time.Duration) (Context, error) {
	deny := ragplane.Errorf(ragplane.EUNAUTHORIZED, "This worker serves only requests signed by the Ragplane proxy.")
	if value == "" || len(value) > 8192 {
		return Context{}, deny
	}
	i := strings.LastIndexByte(value, '.')
	if i < 0 || !strings.HasPrefix(value, version+".") {
		return Context{}, deny
	}
	body, sig := value[:i], value[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, k.mac(body)) {
		return Context{}, deny
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(body, version+"."))
	if err != nil {
		return Context{}, deny
	}
	var p payload
	if err := json.Unmarshal(raw, &p); err != nil {
		return Context{}, deny
	}
	at := time.Unix(p.At, 0)
	if p.Method != method || p.Path != path || at.Before(now.Add(-maxSkew)) || at.After(now.Add(maxSkew)) {
		return Context{}, deny
	}
	id := ragplane.Identity{TenantID: ragplane.TenantID(p.Tenant), Subject: p.Subject, Roles: p.Roles}
	if id.TenantID.Validate() != nil {
		return Context{}, deny
	}
	return Context{Identity: id, RequestID: p.Request, IssuedAt: at, QueriesLeft: p.Left}, nil
}

// ClientHeader carries the client's address from the proxy to the control plane, signed, on the
// requests the proxy forwards there (token exchanges): the control plane audits and rate limits
// that address instead of the proxy's. Clients can never set it: the proxy strips it.
const ClientHeader = "X-Ragplane-Client"

// SignClient returns the ClientHeader value vouching that a request with method and path came
// from addr (an IP address) at now.
func (k *Codec) SignClient(addr, method, path string, now time.Time) string {
	body := "c1." + base64.RawURLEncoding.EncodeToString([]byte(addr)) + "." + strconv.FormatInt(now.Unix(), 10)
	return body + "." + base64.RawURLEncoding.EncodeToString(k.mac(body+"\n"+method+"\n"+path))
}

// VerifyClient returns the client address of a ClientHeader value for a request with method and
// path signed within maxSkew of now; ok is false for any failure.
func (k *Codec) VerifyClient(value, method, path string, now time.Time, maxSkew time.Duration) (addr string, ok bool) {
	if value == "" || len(value) > 512 {
		return "", false
	}
	i := strings.LastIndexByte(value, '.')
	if i < 0 || !strings.HasPrefix(value, "c1.") {
		return "", false
	}
	body, sig := value[:i], value[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, k.mac(body+"\n"+method+"\n"+path)) {
		return "", false
	}
	parts := strings.Split(body, ".")
	if len(parts) != 3 {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	ts, terr := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || terr != nil {
		return "", false
	}
	at := time.Unix(ts, 0)
	if at.Before(now.Add(-maxSkew)) || at.After(now.Add(maxSkew)) {
		return "", false
	}
	return string(raw), true
}
