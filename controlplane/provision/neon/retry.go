package neon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v5"

	"github.com/ragplane/ragplane"
)

const (
	// maxAnswerBytes caps how much of an answer is read.
	maxAnswerBytes = 8 << 20
	// maxMessageLen caps how much of Neon's error message goes into our errors.
	maxMessageLen = 300
	// maxRetryAfter caps a Retry-After we are willing to honour; beyond it MaxElapsed gives up anyway.
	maxRetryAfter = 24 * time.Hour
)

// call is one API request.
type call struct {
	op     string // what the call does, for errors and logs: "create project"
	method string
	path   string // below the base URL, already escaped
	query  url.Values
	body   any // encoded as JSON when not nil
	// idempotent calls are also retried on 5xx and network errors, where the request may have
	// been carried out even though no answer came back.
	idempotent bool
}

// codedError is a failure with a code. It unwraps to the *ragplane.Error callers act on and, when
// there is one, to the network, context or database error behind it. Its text is the
// ragplane.Error's followed by the cause's; neither ever holds the API key or a connection URI.
type codedError struct {
	status     int           // HTTP status of a failed API call; 0 when there was no answer
	retryable  bool          // worth another attempt
	ambiguous  bool          // a call that is not idempotent failed without saying whether it took effect
	retryAfter time.Duration // the server's Retry-After, if any
	rerr       *ragplane.Error
	cause      error
}

// newCodedError returns a codedError without HTTP details.
func newCodedError(code string, cause error, format string, args ...any) *codedError {
	return &codedError{rerr: ragplane.Errorf(code, format, args...), cause: cause}
}

func (e *codedError) Error() string {
	if e.cause == nil {
		return e.rerr.Error()
	}
	return e.rerr.Error() + ": " + e.cause.Error()
}

func (e *codedError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.rerr}
	}
	return []error{e.rerr, e.cause}
}

// hintedBackOff is exponential backoff with jitter that waits at least as long as the server's
// last Retry-After asked for.
type hintedBackOff struct {
	backoff.ExponentialBackOff
	hint time.Duration
}

func (b *hintedBackOff) NextBackOff() time.Duration {
	d := b.ExponentialBackOff.NextBackOff()
	if b.hint > d {
		d = b.hint
	}
	b.hint = 0
	return d
}

// newBackOff returns the backoff used between attempts of one call.
func (c *Client) newBackOff() *hintedBackOff {
	return &hintedBackOff{ExponentialBackOff: backoff.ExponentialBackOff{
		InitialInterval:     c.initial,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         c.maxBackoff,
	}}
}

// do performs a call, retrying transient failures, and decodes a successful answer into out
// (which may be nil).
func (c *Client) do(ctx context.Context, cl call, out any) error {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("neon %s: encode request: %w", cl.op, err)
		}
	}
	b := c.newBackOff()
	attempts := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempts++
		aerr := c.once(ctx, cl, payload, out)
		if aerr == nil {
			return struct{}{}, nil
		}
		if !aerr.retryable {
			return struct{}{}, backoff.Permanent(aerr)
		}
		b.hint = aerr.retryAfter
		return struct{}{}, aerr
	},
		backoff.WithBackOff(b),
		backoff.WithMaxElapsedTime(c.maxElapsed),
		backoff.WithNotify(func(err error, wait time.Duration) {
			var aerr *codedError
			if errors.As(err, &aerr) {
				c.logger.DebugContext(ctx, "neon call failed; retrying", "op", cl.op, "status", aerr.status, "wait", wait)
			}
		}),
	)
	if err == nil {
		return nil
	}
	var aerr *codedError
	if errors.As(err, &aerr) {
		if aerr.retryable {
			aerr.rerr.Message += fmt.Sprintf(" (attempts: %d)", attempts)
		}
		return aerr
	}
	// backoff.Retry returns the context's error when the context ends between attempts.
	return newCodedError(ragplane.EUNAVAILABLE, err, "neon %s: interrupted", cl.op)
}

// once makes one attempt at a call.
func (c *Client) once(ctx context.Context, cl call, payload []byte, out any) *codedError {
	target := strings.TrimSuffix(c.base.String(), "/") + cl.path
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, target, body)
	if err != nil {
		return newCodedError(ragplane.EINVALID, nil, "neon %s: cannot build the request", cl.op)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "ragplane")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return newCodedError(ragplane.EUNAVAILABLE, cerr, "neon %s: interrupted", cl.op)
		}
		// A *url.Error repeats the URL; keep only what went wrong.
		cause := err
		var uerr *url.Error
		if errors.As(err, &uerr) {
			cause = uerr.Err
		}
		e := newCodedError(ragplane.EUNAVAILABLE, cause, "neon %s: no answer", cl.op)
		e.retryable, e.ambiguous = cl.idempotent, !cl.idempotent
		return e
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		e := newCodedError(ragplane.EUNAVAILABLE, err, "neon %s: reading the answer failed", cl.op)
		e.status, e.retryable, e.ambiguous = resp.StatusCode, cl.idempotent, !cl.idempotent
		return e
	}

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out != nil && len(data) > 0 {
			if err := json.Unmarshal(data, out); err != nil {
				return &codedError{
					status:    resp.StatusCode,
					retryable: cl.idempotent,
					rerr:      ragplane.Errorf(ragplane.EUNAVAILABLE, "neon %s: cannot decode the answer (HTTP %d)", cl.op, resp.StatusCode),
				}
			}
		}
		return nil
	}
	return c.statusError(cl, resp, data)
}

// statusError classifies an error answer. Neon's error body is {"code": ..., "message": ...}.
func (c *Client) statusError(cl call, resp *http.Response, data []byte) *codedError {
	var body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(data, &body) // a non-JSON body leaves the message empty
	msg := c.redact(body.Message)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	e := &codedError{status: resp.StatusCode}
	code := ragplane.EINVALID
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests, s == http.StatusLocked:
		// Neither was carried out: rate limited, or locked by the project's running operations.
		code, e.retryable = ragplane.EUNAVAILABLE, true
	case s >= 500:
		code, e.retryable, e.ambiguous = ragplane.EUNAVAILABLE, cl.idempotent, !cl.idempotent
	case s == http.StatusUnauthorized:
		code = ragplane.EUNAUTHORIZED
	case s == http.StatusForbidden:
		code = ragplane.EFORBIDDEN
	case s == http.StatusNotFound:
		code = ragplane.ENOTFOUND
	case s == http.StatusConflict:
		code = ragplane.ECONFLICT
	}
	if e.retryable {
		e.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	e.rerr = ragplane.Errorf(code, "neon %s: HTTP %d: %s", cl.op, resp.StatusCode, msg)
	return e
}

// redact shortens a message from the network or from Neon and removes the API key, should it
// ever be echoed back.
func (c *Client) redact(msg string) string {
	if c.apiKey != "" {
		msg = strings.ReplaceAll(msg, c.apiKey, "[redacted]")
	}
	if len(msg) > maxMessageLen {
		cut := maxMessageLen
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	return msg
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 10.2.3).
// It returns 0 when the header is absent, malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		} else if s > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}
