package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
)

// SignatureHeader carries the webhook's signature: "sha256=" and the hex
// HMAC-SHA256 of the body, keyed with webhook_secret.
const SignatureHeader = "X-Promemoria-Signature"

// Sign returns the value of SignatureHeader for body.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether signature is the one of body under secret, in
// constant time: what a receiving platform does.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

// newHTTPClient returns the webhook's client: it does not follow
// redirects (a redirect is a refusal).
func newHTTPClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// post makes one try at POSTing the CloudEvent: 2xx is delivered, 429 and
// 5xx (and no answer) may pass, anything else is a refusal.
func (s *Stage) post(ctx context.Context, it *item) outcome {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.Webhook.URL, bytes.NewReader(it.raw))
	if err != nil {
		return outcome{err: fmt.Errorf("webhook request: %w", err), permanent: true}
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("User-Agent", s.opts.UserAgent)
	req.Header.Set("Idempotency-Key", it.id)
	req.Header.Set(SignatureHeader, Sign(s.opts.Webhook.Secret, it.raw))
	resp, err := s.http.Do(req)
	if err != nil {
		return outcome{err: fmt.Errorf("webhook: %w", redactErr(err, s.opts.Webhook.URL))}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return outcome{status: c}
	case c == http.StatusTooManyRequests || c >= 500:
		return outcome{err: fmt.Errorf("webhook answered HTTP %d", c), status: c}
	default:
		return outcome{err: fmt.Errorf("webhook answered HTTP %d", c), status: c, permanent: true}
	}
}
