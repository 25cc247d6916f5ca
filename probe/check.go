package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// DefaultMaxBody is how much of a response body a Checker reads by default.
const DefaultMaxBody = 1 << 20

// MaxRedirects is how many same-host redirects a check follows.
const MaxRedirects = 5

// Result is the outcome of one check.
type Result struct {
	Service string
	// URL is the spec's URL as configured; show it with RedactURL.
	URL string
	// At is when the check started.
	At time.Time
	// Status is the final HTTP status code, 0 if no response came.
	Status int
	// Latency is how long the check took, body included.
	Latency time.Duration
	OK      bool
	// Problem is empty when OK; otherwise short English: "HTTP 503",
	// "timeout after 5s", "TLS: certificate expired", "connection refused",
	// "body lacks \"...\"", "redirect to another host".
	Problem string
}

// Checker performs checks: a User-Agent naming promemoria and its version,
// straight to the URL (no proxy: HTTP_PROXY, HTTPS_PROXY and NO_PROXY are
// ignored), no redirects to another host (same-host redirects are followed, at most
// MaxRedirects), the body read up to MaxBody (default DefaultMaxBody) and
// no further. Every check opens a fresh connection, so that DNS, TLS
// certificates and the server's accept are verified each time. A Checker is
// safe for concurrent use.
type Checker struct {
	userAgent string
	maxBody   int64
	client    *http.Client
}

// CheckerOption configures a Checker.
type CheckerOption func(*Checker)

// WithMaxBody sets how many bytes of a body a check reads (DefaultMaxBody
// if n is not positive). A body longer than that is not an error: the rest
// is not read, and expect_body is looked for in what was read.
func WithMaxBody(n int64) CheckerOption {
	return func(c *Checker) {
		if n > 0 {
			c.maxBody = n
		}
	}
}

// UserAgent returns the User-Agent of promemoria's probe at version.
func UserAgent(version string) string {
	if version == "" {
		version = "dev"
	}
	return "promemoria/" + version + " (ANAC outage probe; +https://github.com/promemoria/promemoria)"
}

// NewChecker returns a Checker that sends userAgent (UserAgent("dev") if
// empty).
func NewChecker(userAgent string, opts ...CheckerOption) *Checker {
	if strings.TrimSpace(userAgent) == "" {
		userAgent = UserAgent("")
	}
	c := &Checker{userAgent: userAgent, maxBody: DefaultMaxBody}
	for _, o := range opts {
		o(c)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	// No proxy, whatever HTTP_PROXY and HTTPS_PROXY say: a check goes
	// only to the configured URL, and measures ANAC, not a proxy.
	tr.Proxy = nil
	// The check's context (the spec's timeout) bounds the handshake, as
	// every other step; the transport's 10s default would cut a longer
	// timeout short.
	tr.TLSHandshakeTimeout = 0
	tr.MaxResponseHeaderBytes = 64 << 10
	c.client = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
	return c
}

// redirectError is returned by checkRedirect; its text is the Problem.
type redirectError struct{ problem string }

func (e *redirectError) Error() string { return e.problem }

// checkRedirect follows a redirect only to the same host and port (or from
// http to https on the same host's default ports), at most MaxRedirects.
// It runs before the request is sent, so no request reaches another host.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return &redirectError{fmt.Sprintf("more than %d redirects", MaxRedirects)}
	}
	from, to := via[len(via)-1].URL, req.URL
	if !strings.EqualFold(from.Hostname(), to.Hostname()) {
		return &redirectError{"redirect to another host"}
	}
	switch {
	case from.Scheme == "https" && to.Scheme == "http":
		return &redirectError{"redirect from https to http"}
	case from.Scheme == to.Scheme && effectivePort(from) == effectivePort(to):
		return nil
	case from.Scheme == "http" && to.Scheme == "https" && effectivePort(from) == "80" && effectivePort(to) == "443":
		return nil
	}
	return &redirectError{"redirect to another host"}
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// Check checks s once; s is a validated spec, now the time the check
// starts (Result.At). The check ends after s.Timeout, or when ctx ends.
func (c *Checker) Check(ctx context.Context, s Spec, now time.Time) Result {
	res := Result{Service: s.Service, URL: s.URL, At: now}
	start := time.Now()
	status, problem := c.do(ctx, s)
	res.Latency = time.Since(start)
	res.Status, res.Problem, res.OK = status, problem, problem == ""
	return res
}

func (c *Checker) do(ctx context.Context, s Spec) (status int, problem string) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cctx, cancel := context.WithTimeoutCause(ctx, timeout, errCheckTimeout)
	defer cancel()
	method := s.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(cctx, method, s.URL, nil)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its text holds the URL, credentials and all
			return 0, "bad request: invalid URL " + strconv.Quote(RedactURL(s.URL))
		}
		return 0, "bad request: " + err.Error()
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "*/*")
	resp, err := c.client.Do(req)
	if err != nil {
		if resp != nil { // a refused redirect: the redirect's status
			status = resp.StatusCode
		}
		return status, describe(cctx, ctx, err, timeout)
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	if !s.statusRange().Contains(status) {
		return status, "HTTP " + strconv.Itoa(status)
	}
	if method == http.MethodHead {
		return status, ""
	}
	// Read the body (up to maxBody) even without expect_body: a server that
	// answers the headers and then stalls is not working.
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody))
	if err != nil {
		p := describe(cctx, ctx, err, timeout)
		if !strings.HasPrefix(p, "timeout") && p != "cancelled" {
			p = "reading body: " + p
		}
		return status, p
	}
	if s.ExpectBody != "" && !bytes.Contains(body, []byte(s.ExpectBody)) {
		return status, "body lacks " + strconv.Quote(shorten(s.ExpectBody, 64))
	}
	return status, ""
}

var errCheckTimeout = errors.New("check timed out")

// describe turns a request error into a Problem.
func describe(cctx, parent context.Context, err error, timeout time.Duration) string {
	var re *redirectError
	var hostErr x509.HostnameError
	var certErr x509.CertificateInvalidError
	var authErr x509.UnknownAuthorityError
	var recErr tls.RecordHeaderError
	var alert tls.AlertError
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &re):
		return re.problem
	case context.Cause(cctx) == errCheckTimeout:
		return "timeout after " + timeout.String()
	case parent.Err() != nil:
		return "cancelled"
	case errors.As(err, &certErr):
		switch certErr.Reason {
		case x509.Expired:
			if certErr.Cert != nil && time.Now().Before(certErr.Cert.NotBefore) {
				return "TLS: certificate not yet valid"
			}
			return "TLS: certificate expired"
		case x509.NotAuthorizedToSign:
			return "TLS: certificate not authorised to sign"
		}
		return "TLS: invalid certificate"
	case errors.As(err, &hostErr):
		return "TLS: certificate not valid for " + hostErr.Host
	case errors.As(err, &authErr):
		return "TLS: certificate signed by unknown authority"
	case errors.As(err, &recErr):
		return "TLS: server did not answer TLS"
	case errors.As(err, &alert):
		return "TLS: " + alert.Error()
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "DNS: no such host"
		}
		if dnsErr.IsTimeout {
			return "DNS: timeout"
		}
		return "DNS: " + dnsErr.Err
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout after " + timeout.String()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return shorten(err.Error(), 200)
}

// shorten cuts s to at most n bytes, the mark of the cut ("…", 3 bytes)
// included, on a rune boundary. With n under 3 there is no room for the
// mark: s is cut to n bytes without it.
func shorten(s string, n int) string {
	const mark = "…"
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	cut, tail := n-len(mark), mark
	if cut < 0 {
		cut, tail = n, ""
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + tail
}

// Once checks every spec once, concurrently, and returns the results in
// spec order (for `promemoria probe --once`). now is the time of every
// check.
func Once(ctx context.Context, c *Checker, specs []Spec, now time.Time) []Result {
	out := make([]Result, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Go(func() { out[i] = c.Check(ctx, s, now) })
	}
	wg.Wait()
	return out
}
