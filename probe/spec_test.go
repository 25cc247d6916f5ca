package probe_test

import (
	"strings"
	"testing"
	"time"

	"github.com/promemoria/promemoria/probe"
)

func TestParseStatusRange(t *testing.T) {
	tests := []struct {
		in      string
		want    probe.StatusRange
		str     string
		wantErr string
	}{
		{in: "200-399", want: probe.StatusRange{Min: 200, Max: 399}, str: "200-399"},
		{in: "200", want: probe.StatusRange{Min: 200, Max: 200}, str: "200"},
		{in: " 204 - 204 ", want: probe.StatusRange{Min: 204, Max: 204}, str: "204"},
		{in: "100-599", want: probe.StatusRange{Min: 100, Max: 599}, str: "100-599"},
		{in: "", wantErr: "write a status code such as 200 or an inclusive range such as 200-399"},
		{in: "ok", wantErr: "write a status code such as 200"},
		{in: "200-", wantErr: "write a status code such as 200"},
		{in: "-399", wantErr: "write a status code such as 200"},
		{in: "99", wantErr: "codes 100 to 599"},
		{in: "600", wantErr: "codes 100 to 599"},
		{in: "200-399-500", wantErr: "write a status code"},
		{in: "2xx", wantErr: "write a status code"},
		{in: "399-200", wantErr: "write the lower first, such as 200-399"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := probe.ParseStatusRange(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseStatusRange(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || got.String() != tt.str {
				t.Fatalf("ParseStatusRange(%q) = %v (%q), %v; want %v (%q)", tt.in, got, got.String(), err, tt.want, tt.str)
			}
			if !got.Contains(got.Min) || !got.Contains(got.Max) || got.Contains(got.Min-1) || got.Contains(got.Max+1) {
				t.Errorf("%v.Contains is not inclusive of exactly [%d, %d]", got, got.Min, got.Max)
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	base := probe.Spec{Service: "smartcig", URL: "https://smartcig.anticorruzione.it/"}
	with := func(f func(*probe.Spec)) probe.Spec { s := base; f(&s); return s }
	tests := []struct {
		name    string
		spec    probe.Spec
		want    probe.Spec
		wantErr []string // substrings of the error
	}{
		{
			name: "defaults",
			spec: base,
			want: with(func(s *probe.Spec) {
				s.Method, s.ExpectStatus, s.Interval, s.Timeout = "GET", "200-399", 10*time.Second, 2*time.Second
			}),
		},
		{
			name: "everything set, normalised",
			spec: with(func(s *probe.Spec) {
				s.Method, s.ExpectStatus, s.ExpectBody = "get", " 200 ", "Smart CIG"
				s.Interval, s.Timeout = time.Minute, 7*time.Second
			}),
			want: with(func(s *probe.Spec) {
				s.Method, s.ExpectStatus, s.ExpectBody = "GET", "200", "Smart CIG"
				s.Interval, s.Timeout = time.Minute, 7*time.Second
			}),
		},
		{
			name: "HEAD",
			spec: with(func(s *probe.Spec) { s.Method = "head" }),
			want: with(func(s *probe.Spec) {
				s.Method, s.ExpectStatus, s.Interval, s.Timeout = "HEAD", "200-399", 10*time.Second, 2*time.Second
			}),
		},
		{name: "service missing", spec: with(func(s *probe.Spec) { s.Service = "" }), wantErr: []string{"service", "lower-case letter"}},
		{name: "service upper case", spec: with(func(s *probe.Spec) { s.Service = "SmartCIG" }), wantErr: []string{`service "SmartCIG"`, "such as smartcig"}},
		{name: "service too long", spec: with(func(s *probe.Spec) { s.Service = "a" + strings.Repeat("b", 32) }), wantErr: []string{"up to 31"}},
		{name: "url missing", spec: with(func(s *probe.Spec) { s.URL = "" }), wantErr: []string{"probe smartcig: url: required", "https://"}},
		{name: "url relative", spec: with(func(s *probe.Spec) { s.URL = "/status" }), wantErr: []string{"url", "http:// or https://"}},
		{name: "url ftp", spec: with(func(s *probe.Spec) { s.URL = "ftp://anac.example/" }), wantErr: []string{"url", "http:// or https://"}},
		{name: "url without host", spec: with(func(s *probe.Spec) { s.URL = "https:///status" }), wantErr: []string{"url", "has no host"}},
		{name: "url not parsable", spec: with(func(s *probe.Spec) { s.URL = "https://anac .example/%zz" }), wantErr: []string{"url", "not a URL"}},
		{name: "url with credentials", spec: with(func(s *probe.Spec) { s.URL = "https://user:secret@anac.example/" }), wantErr: []string{"url", "without user:password@", `"https://anac.example/"`}},
		{name: "url with credentials, not http", spec: with(func(s *probe.Spec) { s.URL = "ftp://user:secret@anac.example/" }), wantErr: []string{"url", "without user:password@"}},
		{name: "url with credentials, no host", spec: with(func(s *probe.Spec) { s.URL = "https://user:secret@/status" }), wantErr: []string{"url", "without user:password@"}},
		{name: "url with credentials, not parsable", spec: with(func(s *probe.Spec) { s.URL = "https://user:secret@anac .example/%zz" }), wantErr: []string{"url", "not a URL"}},
		{name: "url with credentials, no scheme", spec: with(func(s *probe.Spec) { s.URL = "user:secret@anac.example" }), wantErr: []string{"url", "http:// or https://"}},
		{name: "url with a token in the query", spec: with(func(s *probe.Spec) { s.URL = "ftp://anac.example/?token=secret" }), wantErr: []string{"url", `"ftp://anac.example/"`}},
		{name: "method", spec: with(func(s *probe.Spec) { s.Method = "POST" }), wantErr: []string{"probe smartcig: method", "write GET or HEAD"}},
		{name: "expect_status", spec: with(func(s *probe.Spec) { s.ExpectStatus = "2xx" }), wantErr: []string{"probe smartcig: expect_status", "200-399"}},
		{name: "HEAD with expect_body", spec: with(func(s *probe.Spec) { s.Method, s.ExpectBody = "HEAD", "ok" }), wantErr: []string{"expect_body", "use method GET"}},
		{name: "expect_body too long", spec: with(func(s *probe.Spec) { s.ExpectBody = strings.Repeat("x", 1025) }), wantErr: []string{"expect_body", "at most 1024 bytes"}},
		{name: "negative interval", spec: with(func(s *probe.Spec) { s.Interval = -time.Second }), wantErr: []string{"interval", "positive duration"}},
		{name: "negative timeout", spec: with(func(s *probe.Spec) { s.Timeout = -time.Second }), wantErr: []string{"timeout", "positive duration"}},
		{name: "interval under 1s", spec: with(func(s *probe.Spec) { s.Interval = time.Millisecond }), wantErr: []string{"probe smartcig: interval 1ms: probe at most once a second, write 1s or more"}},
		{name: "timeout longer than the interval", spec: with(func(s *probe.Spec) { s.Interval, s.Timeout = 5*time.Second, 6*time.Second }), wantErr: []string{"probe smartcig: timeout 6s is longer than the interval 5s", "at most 5s"}},
		{name: "timeout longer than the default interval", spec: with(func(s *probe.Spec) { s.Timeout = 11 * time.Second }), wantErr: []string{"timeout 11s is longer than the interval 10s"}},
		{
			name: "interval of 1s, timeout equal",
			spec: with(func(s *probe.Spec) { s.Interval, s.Timeout = time.Second, time.Second }),
			want: with(func(s *probe.Spec) {
				s.Method, s.ExpectStatus, s.Interval, s.Timeout = "GET", "200-399", time.Second, time.Second
			}),
		},
		{
			name: "the default timeout is cut to a shorter interval",
			spec: with(func(s *probe.Spec) { s.Interval = 1500 * time.Millisecond }),
			want: with(func(s *probe.Spec) {
				s.Method, s.ExpectStatus, s.Interval, s.Timeout = "GET", "200-399", 1500*time.Millisecond, 1500*time.Millisecond
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.spec.Validate(10*time.Second, 2*time.Second)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Validate() = %+v, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Validate() = %+v, %v; want %+v", got, err, tt.want)
			}
			if again, err := got.Validate(time.Hour, time.Hour); err != nil || again != got {
				t.Errorf("Validate is not idempotent: %+v, %v", again, err)
			}
		})
	}
	t.Run("default interval under 1s", func(t *testing.T) {
		_, err := base.Validate(500*time.Millisecond, 0)
		if err == nil || !strings.Contains(err.Error(), "interval 500ms: probe at most once a second") {
			t.Fatalf("Validate(500ms, 0): %v, want the interval refused", err)
		}
	})
	t.Run("package defaults", func(t *testing.T) {
		got, err := base.Validate(0, 0)
		if err != nil || got.Interval != probe.DefaultInterval || got.Timeout != probe.DefaultTimeout {
			t.Fatalf("Validate(0, 0) = %+v, %v; want interval %s and timeout %s", got, err, probe.DefaultInterval, probe.DefaultTimeout)
		}
	})
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://www.anticorruzione.it/", "https://www.anticorruzione.it/"},
		{"https://pcp.anac.example:8443/status", "https://pcp.anac.example:8443/status"},
		{"https://user:secret@anac.example/status", "https://anac.example/status"},
		{"https://user@anac.example/", "https://anac.example/"},
		{"https://anac.example/status?token=secret&x=1", "https://anac.example/status"},
		{"https://anac.example/status?", "https://anac.example/status"},
		{"https://anac.example/status#secret", "https://anac.example/status"},
		{"https://user:s%40cret@anac.example/a@b?k=secret", "https://anac.example/a@b"},
		{"https://user:secret@anac .example/%zz", "https://anac .example/%zz"}, // not a URL
		{"https://user:pa?secret@anac.example/", "https://anac.example/"},      // not a URL either
		{"https://user:pa/secret@anac.example/", "https://anac.example/"},      // a / in the password
		{"https://u:p@secret@anac.example/", "https://anac.example/"},          // an @ in the password
		{"user:secret@anac.example/status", "anac.example/status"},             // no scheme
		{"pcp.anac.example", "pcp.anac.example"},
		{"", ""},
	}
	for _, tt := range tests {
		got := probe.RedactURL(tt.in)
		if got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "secret") {
			t.Errorf("RedactURL(%q) = %q shows the secret", tt.in, got)
		}
	}
}
