package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

func TestShorten(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{s: "abc", n: 3, want: "abc"},
		{s: "abcdef", n: 6, want: "abcdef"},
		{s: "abcdefg", n: 6, want: "abc…"},
		{s: "abcd", n: 3, want: "…"},
		{s: "abcd", n: 2, want: "ab"},
		{s: "abcd", n: 0, want: ""},
		{s: "àèìòù", n: 8, want: "àè…"},  // 2-byte runes: no half rune
		{s: "àèìòù", n: 7, want: "àè…"},  // 4 bytes + 3
		{s: "àèìòù", n: 6, want: "à…"},   // àè would leave no room
		{s: "àèìòù", n: 2, want: "à"},    // no room for the mark
		{s: "àèìòù", n: 1, want: ""},     // nor for a rune
		{s: "€€€€", n: 9, want: "€€…"},   // 3-byte runes
		{s: "€€€€", n: 11, want: "€€…"},  // €€€ would leave no room
		{s: "€€€€", n: 12, want: "€€€€"}, // fits
	}
	for _, tt := range tests {
		got := shorten(tt.s, tt.n)
		if got != tt.want || len(got) > max(tt.n, 0) || !utf8.ValidString(got) {
			t.Errorf("shorten(%q, %d) = %q (%d bytes), want %q", tt.s, tt.n, got, len(got), tt.want)
		}
	}
}

func TestNoticeFitsTheContract(t *testing.T) {
	// 300 failures, each a different problem: the full notice would be
	// far over the contract's 4096 bytes.
	tr := NewTracker(300, 1, nil)
	at := time.Now()
	var got Transition
	for i := range 300 {
		var ok bool
		got, ok = tr.Observe(Result{Service: "pcp", At: at, Problem: "DNS: lookup number " + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String()})
		if ok != (i == 299) {
			t.Fatalf("check %d: transition %v", i, ok)
		}
	}
	if len(got.Notice) > maxNotice || !strings.HasSuffix(got.Notice, "…") {
		t.Fatalf("notice of %d bytes (limit %d), ends %q", len(got.Notice), maxNotice, got.Notice[max(len(got.Notice)-20, 0):])
	}
}

func TestCheckerTransport(t *testing.T) {
	tr := NewChecker("").client.Transport.(*http.Transport)
	if tr.Proxy != nil {
		t.Error("the checker's transport uses a proxy: checks must go only to the configured URLs")
	}
	if tr.TLSHandshakeTimeout != 0 {
		t.Errorf("TLSHandshakeTimeout %s: the check's timeout alone must bound the handshake", tr.TLSHandshakeTimeout)
	}
}

func TestFenced(t *testing.T) {
	if _, _, err := fence(context.Background(), time.Time{}, time.Second); !errors.Is(err, errNoLease) {
		t.Fatalf("fenced without the lease: %v, want errNoLease", err)
	}
	if _, _, err := fence(context.Background(), time.Now().Add(-time.Millisecond), time.Second); !errors.Is(err, errNoLease) {
		t.Fatalf("fenced past the lease's validity: %v, want errNoLease", err)
	}
	validUntil := time.Now().Add(300 * time.Millisecond)
	ctx, cancel, err := fence(context.Background(), validUntil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if d, ok := ctx.Deadline(); !ok || !d.Equal(validUntil) {
		t.Errorf("deadline %s, %v; want the lease's validity %s", d, ok, validUntil)
	}
	ctx2, cancel2, err := fence(context.Background(), validUntil, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel2()
	if d, _ := ctx2.Deadline(); !d.Before(validUntil) {
		t.Errorf("deadline %s: want the limit, sooner than the validity %s", d, validUntil)
	}
}

func TestWarnPerService(t *testing.T) {
	var buf bytes.Buffer
	r := &Runner{
		log:    zerolog.New(&buf).Level(zerolog.DebugLevel),
		warned: map[string]string{},
		urls:   map[string]string{"pcp": "https://pcp.example/status", "smartcig": "https://smartcig.example/"},
	}
	err := errors.New("nats: timeout")
	r.warn("publish", "pcp", err, "cannot publish")
	r.warn("publish", "smartcig", err, "cannot publish") // another service: a streak of its own
	r.warn("publish", "pcp", err, "cannot publish")      // same streak: debug
	r.clearWarn("publish", "pcp")
	r.warn("publish", "pcp", err, "cannot publish") // a new streak
	var got []string
	for line := range strings.Lines(buf.String()) {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e["level"].(string)+" "+e["service"].(string)+" "+e["url"].(string))
	}
	want := []string{
		"warn pcp https://pcp.example/status",
		"warn smartcig https://smartcig.example/",
		"debug pcp https://pcp.example/status",
		"warn pcp https://pcp.example/status",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logged\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
