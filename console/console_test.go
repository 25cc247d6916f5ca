package console_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
)

// rows counts the rows of the first table body of a page.
func rows(body string) int {
	i := strings.Index(body, "<tbody>")
	j := strings.Index(body, "</tbody>")
	if i < 0 || j < i {
		return 0
	}
	return strings.Count(body[i:j], "<tr")
}

// TestPages reads every page over HTTP, as a browser would, on a running
// promemoria: what the test published shows, filters narrow, the language
// follows ?lang= and Accept-Language, and the security headers are set.
func TestPages(t *testing.T) {
	f := startFixture(t)

	resp, body := f.get(t, "/", "")
	if resp.StatusCode != 200 {
		t.Fatalf("/: %d %s", resp.StatusCode, body)
	}
	for _, want := range []string{`<html lang="it">`, "Smart CIG", "Non disponibile", "1 servizio non disponibile", `<svg class="timeline"`, `class="tl-out ongoing"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/ lacks %q", want)
		}
	}
	for h, want := range map[string]string{
		"Content-Security-Policy": "frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := resp.Header.Get(h); !strings.Contains(got, want) {
			t.Errorf("/ header %s = %q, want %q in it", h, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP allows inline scripts: %q", csp)
	}
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]`).MatchString(body) || strings.Contains(body, " style=") {
		t.Error("/ has an inline script or style")
	}

	_, en := f.get(t, "/?lang=en", "")
	_, accepted := f.get(t, "/", "en-GB,en;q=0.9,it;q=0.5")
	for name, b := range map[string]string{"?lang=en": en, "Accept-Language": accepted} {
		if !strings.Contains(b, `<html lang="en">`) || !strings.Contains(b, "1 service down") {
			t.Errorf("%s: not in English", name)
		}
	}
	if _, b := f.get(t, "/?lang=it", "en"); !strings.Contains(b, `<html lang="it">`) {
		t.Error("?lang=it does not win over Accept-Language")
	}

	for path, want := range map[string]int{
		"/gaps":                    3,
		"/gaps?kind=contribution":  1,
		"/gaps?kind=cig":           2,
		"/gaps?service=smartcig":   1,
		"/gaps?state=service_down": 1,
		"/gaps?state=waiting_cig":  1,
		"/gaps?state=resolved":     0,
		"/gaps?tender=" + url.QueryEscape(hostileTender): 2,
		"/gaps?size=1": 1,
	} {
		resp, b := f.get(t, path, "")
		if resp.StatusCode != 200 || rows(b) != want {
			t.Errorf("%s: status %d, %d rows, want %d", path, resp.StatusCode, rows(b), want)
		}
	}
	// Paging one at a time reaches every gap once.
	seen := map[string]bool{}
	next := "/gaps?size=1"
	for i := 0; next != "" && i < 10; i++ {
		_, b := f.get(t, next, "")
		for _, m := range regexp.MustCompile(`data-key="([^"]+)"`).FindAllStringSubmatch(b, -1) {
			if seen[m[1]] {
				t.Errorf("gap %s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		next = ""
		if m := regexp.MustCompile(`rel="next" href="([^"]+)"`).FindStringSubmatch(b); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(seen) != 3 {
		t.Errorf("paging by one saw %d gaps, want 3", len(seen))
	}
	if resp, _ := f.get(t, "/gaps?kind=other", ""); resp.StatusCode != 400 {
		t.Errorf("/gaps?kind=other: %d, want 400", resp.StatusCode)
	}

	resp, body = f.get(t, "/tender?id="+url.QueryEscape(hostileTender), "")
	if resp.StatusCode != 200 {
		t.Fatalf("tender page: %d", resp.StatusCode)
	}
	if strings.Contains(body, "<script>window") || strings.Contains(body, "<b>urgente") || strings.Contains(body, `<img src=x`) {
		t.Error("the tender page carries the event's markup unescaped")
	}
	for _, want := range []string{"&lt;script&gt;window.__pwned=1&lt;/script&gt;Fornitura &lt;b&gt;urgente&lt;/b&gt;", "Sollecito CIG", "Evento scartato", "Edilstrade S.r.l.", "In attesa del CIG"} {
		if !strings.Contains(body, want) {
			t.Errorf("tender page lacks %q", want)
		}
	}
	if resp, _ := f.get(t, "/tender?id=NONE", ""); resp.StatusCode != 404 {
		t.Errorf("unknown tender: %d, want 404", resp.StatusCode)
	}

	_, body = f.get(t, "/activity", "")
	for _, want := range []string{"reminder.cig", "deadletter", fmt.Sprintf(`href="/activity/%d?lang=it"`, f.deadLetter)} {
		if !strings.Contains(body, want) {
			t.Errorf("/activity lacks %q", want)
		}
	}
	if _, b := f.get(t, "/activity?class=deadletter", ""); rows(b) != 1 || !strings.Contains(b, "invalid_cig") {
		t.Errorf("/activity?class=deadletter: %d rows", rows(b))
	}

	resp, body = f.get(t, fmt.Sprintf("/activity/%d", f.deadLetter), "")
	if resp.StatusCode != 200 {
		t.Fatalf("dead letter page: %d", resp.StatusCode)
	}
	for _, want := range []string{"invalid_cig", badCIG, "procurement.tender.cig_assigned", "Scarica i byte originali"} {
		if !strings.Contains(body, want) {
			t.Errorf("dead letter page lacks %q", want)
		}
	}
	resp, raw := f.get(t, fmt.Sprintf("/activity/%d/data", f.deadLetter), "")
	if resp.StatusCode != 200 || !bytes.Equal([]byte(raw), f.input) || resp.Header.Get("Content-Disposition") == "" {
		t.Errorf("original bytes: %d %q, want %q", resp.StatusCode, raw, f.input)
	}
	if resp, _ := f.get(t, "/activity/999999", ""); resp.StatusCode != 404 {
		t.Errorf("unknown message: %d, want 404", resp.StatusCode)
	}
	for _, p := range []string{"/static/console.css", "/static/console.js", "/static/favicon.svg"} {
		if resp, _ := f.get(t, p, ""); resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}

// TestDeadLetterBytes checks that the dead letter's page and download show
// the bytes the output stream holds.
func TestDeadLetterBytes(t *testing.T) {
	f := startFixture(t)
	var dl events.DeadLetter
	f.eachOutput(t, func(m *jetstream.RawStreamMsg) {
		if m.Sequence != f.deadLetter {
			return
		}
		var env events.Envelope
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(env.Data, &dl); err != nil {
			t.Fatal(err)
		}
	})
	_, raw := f.get(t, fmt.Sprintf("/activity/%d/data", f.deadLetter), "")
	if !bytes.Equal([]byte(raw), dl.Data) {
		t.Errorf("downloaded %q, the dead letter holds %q", raw, dl.Data)
	}
}
