package probe_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promemoria/promemoria/probe"
)

// recorder is an HTTP server that records the requests it receives.
type recorder struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec.mu.Lock()
		rec.requests = append(rec.requests, req.Clone(context.Background()))
		rec.mu.Unlock()
		h(w, req)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorder) seen() []*http.Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]*http.Request(nil), rec.requests...)
}

func validated(t *testing.T, s probe.Spec) probe.Spec {
	t.Helper()
	if s.Service == "" {
		s.Service = "pcp"
	}
	v, err := s.Validate(time.Minute, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCheck(t *testing.T) {
	// other is another host: "localhost" where the checked server is
	// "127.0.0.1". It must never be asked anything.
	other := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(okBody)) })
	otherURL, _ := url.Parse(other.URL)
	otherURL.Host = "localhost:" + otherURL.Port()

	srv := newRecorder(t, func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte(okBody))
		case "/down":
			http.Error(w, "non disponibile", http.StatusServiceUnavailable)
		case "/notfound":
			http.NotFound(w, req)
		case "/maintenance":
			_, _ = w.Write([]byte("Manutenzione programmata"))
		case "/slow":
			select {
			case <-req.Context().Done():
			case <-time.After(deadline):
			}
		case "/slowbody":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-req.Context().Done():
			case <-time.After(deadline):
			}
		case "/moved":
			http.Redirect(w, req, "/ok", http.StatusFound)
		case "/elsewhere":
			http.Redirect(w, req, otherURL.String()+"/ok", http.StatusFound)
		case "/loop":
			http.Redirect(w, req, "/loop", http.StatusFound)
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		}
	})
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name       string
		spec       probe.Spec
		wantOK     bool
		wantStatus int
		wantProb   string
	}{
		{name: "ok", spec: probe.Spec{URL: srv.URL + "/ok"}, wantOK: true, wantStatus: 200},
		{name: "expect_body found", spec: probe.Spec{URL: srv.URL + "/ok", ExpectBody: "Servizio attivo"}, wantOK: true, wantStatus: 200},
		{name: "expect_body missing", spec: probe.Spec{URL: srv.URL + "/maintenance", ExpectBody: "Servizio attivo"}, wantStatus: 200, wantProb: `body lacks "Servizio attivo"`},
		{name: "HTTP 503", spec: probe.Spec{URL: srv.URL + "/down"}, wantStatus: 503, wantProb: "HTTP 503"},
		{name: "HTTP 404", spec: probe.Spec{URL: srv.URL + "/notfound"}, wantStatus: 404, wantProb: "HTTP 404"},
		{name: "expected status", spec: probe.Spec{URL: srv.URL + "/teapot", ExpectStatus: "418"}, wantOK: true, wantStatus: 418},
		{name: "status outside the expected range", spec: probe.Spec{URL: srv.URL + "/ok", ExpectStatus: "204"}, wantStatus: 200, wantProb: "HTTP 200"},
		{name: "HEAD", spec: probe.Spec{URL: srv.URL + "/ok", Method: "HEAD"}, wantOK: true, wantStatus: 200},
		{name: "timeout", spec: probe.Spec{URL: srv.URL + "/slow", Timeout: 100 * time.Millisecond}, wantProb: "timeout after 100ms"},
		{name: "timeout reading the body", spec: probe.Spec{URL: srv.URL + "/slowbody", Timeout: 100 * time.Millisecond}, wantStatus: 200, wantProb: "timeout after 100ms"},
		{name: "same-host redirect followed", spec: probe.Spec{URL: srv.URL + "/moved", ExpectBody: "Servizio attivo"}, wantOK: true, wantStatus: 200},
		{name: "redirect to another host", spec: probe.Spec{URL: srv.URL + "/elsewhere"}, wantStatus: 302, wantProb: "redirect to another host"},
		{name: "too many redirects", spec: probe.Spec{URL: srv.URL + "/loop"}, wantStatus: 302, wantProb: "more than 5 redirects"},
		{name: "connection refused", spec: probe.Spec{URL: closedURL + "/ok"}, wantProb: "connection refused"},
	}
	c := probe.NewChecker(probe.UserAgent("1.2.3"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validated(t, tt.spec)
			now := time.Date(2021, 5, 3, 8, 30, 0, 0, time.UTC)
			start := time.Now()
			got := c.Check(context.Background(), s, now)
			if got.OK != tt.wantOK || got.Status != tt.wantStatus || got.Problem != tt.wantProb {
				t.Fatalf("Check = ok %v, status %d, problem %q; want ok %v, status %d, problem %q",
					got.OK, got.Status, got.Problem, tt.wantOK, tt.wantStatus, tt.wantProb)
			}
			if got.Service != s.Service || got.URL != s.URL || !got.At.Equal(now) {
				t.Errorf("Check = service %q, url %q, at %s; want %q, %q, %s", got.Service, got.URL, got.At, s.Service, s.URL, now)
			}
			if got.Latency <= 0 || got.Latency > time.Since(start) {
				t.Errorf("latency %s, want between 0 and %s", got.Latency, time.Since(start))
			}
		})
	}

	t.Run("User-Agent and method sent", func(t *testing.T) {
		for _, req := range srv.seen() {
			if ua := req.Header.Get("User-Agent"); !strings.HasPrefix(ua, "promemoria/1.2.3 ") {
				t.Errorf("%s %s: User-Agent %q, want promemoria/1.2.3 …", req.Method, req.URL, ua)
			}
		}
		var heads int
		for _, req := range srv.seen() {
			if req.Method == http.MethodHead {
				heads++
			}
		}
		if heads != 1 {
			t.Errorf("%d HEAD requests, want 1", heads)
		}
	})
	t.Run("another host is never asked", func(t *testing.T) {
		if n := len(other.seen()); n != 0 {
			t.Errorf("the other host received %d requests", n)
		}
	})
}

func TestCheckTLS(t *testing.T) {
	expired := selfSigned(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	tests := []struct {
		name     string
		cert     *tls.Certificate // nil: httptest's own, from an unknown authority
		wantProb string
	}{
		{name: "certificate expired", cert: &expired, wantProb: "TLS: certificate expired"},
		{name: "unknown authority", wantProb: "TLS: certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(okBody))
			}))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are the point
			if tt.cert != nil {
				srv.TLS = &tls.Config{Certificates: []tls.Certificate{*tt.cert}}
			}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			got := probe.NewChecker("").Check(context.Background(), validated(t, probe.Spec{URL: srv.URL + "/"}), time.Now())
			if got.OK || got.Problem != tt.wantProb {
				t.Fatalf("Check = ok %v, problem %q; want problem %q", got.OK, got.Problem, tt.wantProb)
			}
		})
	}
}

// selfSigned returns a certificate for 127.0.0.1 valid from notBefore to
// notAfter.
func selfSigned(t *testing.T, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "anac.test"},
		NotBefore:    notBefore, NotAfter: notAfter,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// endless is a server whose body never ends: it writes until the client
// goes away, then reports how much it wrote.
func endless(t *testing.T, prefix string) (*httptest.Server, <-chan int64) {
	t.Helper()
	written := make(chan int64, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var n int64
		defer func() { written <- n }()
		k, err := w.Write([]byte(prefix))
		n += int64(k)
		chunk := []byte(strings.Repeat("x", 32<<10))
		for err == nil && req.Context().Err() == nil && n < 1<<30 {
			k, err = w.Write(chunk)
			n += int64(k)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, written
}

func TestCheckBodyCap(t *testing.T) {
	tests := []struct {
		name     string
		opts     []probe.CheckerOption
		prefix   string // the start of the endless body
		expect   string
		wantProb string
	}{
		{name: "default cap: an endless body is cut", expect: "never there", wantProb: `body lacks "never there"`},
		{name: "default cap: an endless body without expect_body passes"},
		{name: "small cap: marker inside", opts: []probe.CheckerOption{probe.WithMaxBody(16)}, prefix: "ANAC-OK", expect: "ANAC-OK"},
		{name: "small cap: marker past it", opts: []probe.CheckerOption{probe.WithMaxBody(16)}, prefix: strings.Repeat("-", 16) + "ANAC-OK", expect: "ANAC-OK", wantProb: `body lacks "ANAC-OK"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, written := endless(t, tt.prefix)
			s := validated(t, probe.Spec{URL: srv.URL + "/", ExpectBody: tt.expect, Timeout: deadline})
			got := probe.NewChecker("", tt.opts...).Check(context.Background(), s, time.Now())
			if got.OK != (tt.wantProb == "") || got.Problem != tt.wantProb {
				t.Fatalf("Check = ok %v, problem %q; want problem %q", got.OK, got.Problem, tt.wantProb)
			}
			// The check returned without waiting for the body's end (there
			// is none), and the server could write little more than the
			// cap and the sockets' buffers before the client went away.
			select {
			case n := <-written:
				if n >= 1<<30 {
					t.Errorf("the server wrote %d bytes: the body was not cut", n)
				}
			case <-time.After(deadline):
				t.Fatal("the server is still writing: the client did not hang up")
			}
		})
	}
}

func TestOnce(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hits.Add(1)
		if req.URL.Path == "/down" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	specs := []probe.Spec{
		validated(t, probe.Spec{Service: "smartcig", URL: srv.URL + "/ok"}),
		validated(t, probe.Spec{Service: "pcp", URL: srv.URL + "/down"}),
		validated(t, probe.Spec{Service: "payments", URL: srv.URL + "/ok", Method: "HEAD"}),
	}
	now := time.Date(2021, 5, 3, 8, 30, 0, 0, time.UTC)
	got := probe.Once(context.Background(), probe.NewChecker(""), specs, now)
	want := []struct {
		service string
		ok      bool
		problem string
	}{{"smartcig", true, ""}, {"pcp", false, "HTTP 502"}, {"payments", true, ""}}
	if len(got) != len(want) {
		t.Fatalf("Once returned %d results, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Service != w.service || got[i].OK != w.ok || got[i].Problem != w.problem || !got[i].At.Equal(now) {
			t.Errorf("result %d = %+v, want %+v at %s", i, got[i], w, now)
		}
	}
	if hits.Load() != 3 {
		t.Errorf("%d requests, want 3", hits.Load())
	}
}

func TestCheckDoesNotShowCredentials(t *testing.T) {
	// Not validated: Validate would refuse the URL.
	s := probe.Spec{Service: "pcp", URL: "https://user:secret@anac .example/%zz?token=secret", Timeout: time.Second}
	got := probe.NewChecker("").Check(context.Background(), s, time.Now())
	if got.OK || !strings.HasPrefix(got.Problem, "bad request") || strings.Contains(got.Problem, "secret") {
		t.Fatalf("Check = ok %v, problem %q; want a bad request that does not show the secret", got.OK, got.Problem)
	}
}
