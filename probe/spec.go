// Package probe detects ANAC outages by itself: it checks each configured
// service over HTTP and publishes the changes of its state as ordinary
// portal.down and portal.up input events, so the worker treats them like
// those of any other source.
//
// A Checker performs one check, a Tracker turns the results into
// transitions (down after a run of failures, up after a run of successes),
// and a Runner does both on a schedule while it holds a lease in a
// JetStream key-value bucket, so that one replica probes at a time and a
// restart never publishes a transition twice.
package probe

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultInterval is the time between two checks of a service when neither
// the spec nor the configuration sets one.
const DefaultInterval = 30 * time.Second

// DefaultTimeout bounds one check when neither the spec nor the
// configuration sets a timeout.
const DefaultTimeout = 5 * time.Second

// DefaultExpectStatus is the range of HTTP status codes a check accepts
// when the spec does not say.
const DefaultExpectStatus = "200-399"

// MaxExpectBody is the longest expect_body accepted, in bytes.
const MaxExpectBody = 1024

// MinInterval is the shortest interval between two checks of a service
// that Validate accepts: a probe checks a service at most once a second.
const MinInterval = time.Second

// serviceRe is the contract's rule for a service name (events/README.md).
var serviceRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Min, Max int }

// ParseStatusRange parses a status code such as "200" or an inclusive range
// such as "200-399". Codes are between 100 and 599.
func ParseStatusRange(s string) (StatusRange, error) {
	const want = "write a status code such as 200 or an inclusive range such as 200-399 (codes 100 to 599)"
	t := strings.TrimSpace(s)
	lo, hi, isRange := strings.Cut(t, "-")
	minC, err1 := parseStatusCode(lo)
	maxC, err2 := minC, error(nil)
	if isRange {
		maxC, err2 = parseStatusCode(hi)
	}
	if err := errors.Join(err1, err2); err != nil {
		return StatusRange{}, fmt.Errorf("status range %q: %s", s, want)
	}
	if minC > maxC {
		return StatusRange{}, fmt.Errorf("status range %q: the first code is greater than the second: write the lower first, such as %d-%d", s, maxC, minC)
	}
	return StatusRange{Min: minC, Max: maxC}, nil
}

func parseStatusCode(s string) (int, error) {
	s = strings.TrimSpace(s)
	if len(s) != 3 {
		return 0, errors.New("not three digits")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return 0, errors.New("not a status code")
	}
	return n, nil
}

// String returns the range as ParseStatusRange reads it: "200" or "200-399".
func (r StatusRange) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return strconv.Itoa(r.Min) + "-" + strconv.Itoa(r.Max)
}

// Contains reports whether code is in the range.
func (r StatusRange) Contains(code int) bool { return code >= r.Min && code <= r.Max }

// Spec is one probe: how to check one ANAC service.
type Spec struct {
	// Service is the ANAC service the probe stands for, as named in
	// portal.down and portal.up (smartcig, pcp, payments, …).
	Service string `json:"service" yaml:"service"`
	// URL is the absolute http or https URL to check.
	URL string `json:"url" yaml:"url"`
	// Method is GET (the default) or HEAD.
	Method string `json:"method,omitempty" yaml:"method,omitempty"`
	// ExpectStatus is the accepted status codes, "200-399" by default.
	ExpectStatus string `json:"expect_status,omitempty" yaml:"expect_status,omitempty"`
	// ExpectBody, if set, is a substring the body must contain (GET only).
	ExpectBody string `json:"expect_body,omitempty" yaml:"expect_body,omitempty"`
	// Interval is the time between two checks; 0 means the global default.
	// At least MinInterval.
	//
	// Interval and Timeout are for Go callers and carry no json or yaml
	// tags: the configuration reads durations as text ("30s"), which
	// encoding/json does not do for a time.Duration (it writes
	// nanoseconds).
	Interval time.Duration
	// Timeout bounds one check; 0 means the global default. At most the
	// interval.
	Timeout time.Duration
}

// Validate checks the spec and returns it with defaults applied: method GET,
// expect_status 200-399, and defaultInterval and defaultTimeout where the
// spec sets none (DefaultInterval and DefaultTimeout if those are not
// positive either). The method is upper-cased and the status range written
// in its canonical form. Errors name the probe and the field, and say what
// to write; they never show the URL's credentials or query (RedactURL).
//
// The interval, whether the spec's or the default, must be at least
// MinInterval, and a timeout the spec sets must not exceed the interval; a
// default timeout longer than the interval is cut to the interval.
func (s Spec) Validate(defaultInterval, defaultTimeout time.Duration) (Spec, error) {
	return s.validate(defaultInterval, defaultTimeout, true)
}

// validate is Validate; with schedule false it skips the rules of the
// schedule (MinInterval, timeout at most the interval). Only the Runner's
// tests skip them, to probe every few milliseconds, through Options.fast
// (set by export_test.go, so it exists in test binaries only): a program
// cannot.
func (s Spec) validate(defaultInterval, defaultTimeout time.Duration, schedule bool) (Spec, error) {
	if !serviceRe.MatchString(s.Service) {
		return Spec{}, fmt.Errorf("probe: service %q: write the service name as in portal.down events: a lower-case letter, then up to 31 lower-case letters, digits, _ or - (such as smartcig or pcp)", s.Service)
	}
	fail := func(field, format string, args ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("probe %s: %s: %s", s.Service, field, fmt.Sprintf(format, args...))
	}
	// The URL is only ever shown redacted: without user:password@ and
	// without the query, which may carry a token.
	shown := RedactURL(s.URL)
	u, err := url.Parse(s.URL)
	switch {
	case err == nil && u.User != nil:
		return fail("url", "%q carries credentials: write the URL without user:password@ (they would show in logs)", shown)
	case strings.TrimSpace(s.URL) == "":
		return fail("url", "required: write an absolute http or https URL, such as https://www.anticorruzione.it/")
	case err != nil:
		return fail("url", "%q is not a URL: write an absolute http or https URL, such as https://www.anticorruzione.it/", shown)
	case !strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https"):
		return fail("url", "%q: write an absolute URL that starts with http:// or https://", shown)
	case u.Host == "" || u.Hostname() == "":
		return fail("url", "%q has no host: write an absolute URL such as https://www.anticorruzione.it/", shown)
	}
	switch m := strings.ToUpper(strings.TrimSpace(s.Method)); m {
	case "":
		s.Method = "GET"
	case "GET", "HEAD":
		s.Method = m
	default:
		return fail("method", "%q: write GET or HEAD", s.Method)
	}
	if strings.TrimSpace(s.ExpectStatus) == "" {
		s.ExpectStatus = DefaultExpectStatus
	}
	r, err := ParseStatusRange(s.ExpectStatus)
	if err != nil {
		return Spec{}, fmt.Errorf("probe %s: expect_status: %w", s.Service, err)
	}
	s.ExpectStatus = r.String()
	switch {
	case s.ExpectBody != "" && s.Method == "HEAD":
		return fail("expect_body", "a HEAD response has no body: use method GET, or remove expect_body")
	case len(s.ExpectBody) > MaxExpectBody:
		return fail("expect_body", "%d bytes: write a substring of at most %d bytes", len(s.ExpectBody), MaxExpectBody)
	}
	if defaultInterval <= 0 {
		defaultInterval = DefaultInterval
	}
	if defaultTimeout <= 0 {
		defaultTimeout = DefaultTimeout
	}
	switch {
	case s.Interval < 0:
		return fail("interval", "%s is negative: write a positive duration such as 30s, or leave it out for the default", s.Interval)
	case s.Interval == 0:
		s.Interval = defaultInterval
	}
	if schedule && s.Interval < MinInterval {
		return Spec{}, fmt.Errorf("probe %s: interval %s: probe at most once a second, write %s or more", s.Service, s.Interval, MinInterval)
	}
	switch {
	case s.Timeout < 0:
		return fail("timeout", "%s is negative: write a positive duration such as 5s, or leave it out for the default", s.Timeout)
	case s.Timeout == 0 && schedule:
		s.Timeout = min(defaultTimeout, s.Interval)
	case s.Timeout == 0:
		s.Timeout = defaultTimeout
	case schedule && s.Timeout > s.Interval:
		return Spec{}, fmt.Errorf("probe %s: timeout %s is longer than the interval %s: a check must end before the next one, write at most %s", s.Service, s.Timeout, s.Interval, s.Interval)
	}
	return s, nil
}

// RedactURL returns raw as it may be shown in logs, errors and output:
// without user:password@ and without the query and fragment, which may
// carry a token. A string that does not parse as a URL is cut after its
// last @ (if any) and before its first ? or #, so that nothing of a
// user:password@ survives.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		u.User = nil
		u.RawQuery, u.ForceQuery = "", false
		u.Fragment, u.RawFragment = "", ""
		return u.String()
	}
	s := raw
	if i := strings.LastIndex(s, "@"); i >= 0 {
		scheme := ""
		if j := strings.Index(s[:i], "://"); j >= 0 && !strings.ContainsAny(s[:j], "/?#@") {
			scheme = s[:j+3]
		}
		s = scheme + s[i+1:]
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	return s
}

// statusRange returns the parsed ExpectStatus of a validated spec.
func (s Spec) statusRange() StatusRange {
	r, err := ParseStatusRange(s.ExpectStatus)
	if err != nil {
		r, _ = ParseStatusRange(DefaultExpectStatus)
	}
	return r
}
