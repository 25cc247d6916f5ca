package console_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath returns the Chromium (or Chrome) to drive, skipping the test
// when none is installed.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMEMORIA_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("browser tests skipped: no Chromium on PATH (install Debian's package with: apt-get install -y chromium; .ci/run does it; or set PROMEMORIA_CHROMIUM)")
	return ""
}

// browser is a headless Chromium tab and what its console said.
type browser struct {
	ctx context.Context
	dir string

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
}

// newBrowser starts a headless Chromium, stopped when the test ends; its
// console messages are collected for noErrors.
func newBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(width, height))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	b := &browser{ctx: ctx, dir: t.TempDir()}
	if d := os.Getenv("PROMEMORIA_SCREENSHOTS"); d != "" {
		// Keep them after the test, for a look.
		b.dir = d
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.messages = append(b.messages, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// open loads a page and waits for its heading.
func (b *browser) open(t *testing.T, u string) {
	t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
}

// shot writes a screenshot of the whole page under the test's directory
// (or PROMEMORIA_SCREENSHOTS, to keep them) and prints its path.
func (b *browser) shot(t *testing.T, name string) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s: %s", name, path)
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// noErrors fails the test if the console got an error or an exception
// since the last call. A sentinel written to the console marks the point
// up to which every message has arrived.
func (b *browser) noErrors(t *testing.T, page string) {
	t.Helper()
	sentinel := fmt.Sprintf("promemoria-test-%d", time.Now().UnixNano())
	eval[any](t, b, fmt.Sprintf("console.info(%q)", sentinel))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		var seen bool
		var errs []string
		for _, m := range b.messages {
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				errs = append(errs, m.String()+" at "+m.URL)
			}
			if strings.Contains(m.Text, sentinel) {
				seen = true
			}
		}
		if seen {
			b.messages = nil
		}
		b.mu.Unlock()
		if seen {
			for _, e := range errs {
				t.Errorf("%s: console %s", page, e)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the console's sentinel never arrived", page)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLocation waits until the page's URL contains want.
func (b *browser) waitLocation(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		loc, err := chromedp.Run(b.ctx, chromedp.Location())
		if err == nil && strings.Contains(loc, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page did not reach %q (at %q, %v)", want, loc, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrowser drives each page of the console in headless Chromium on a
// running promemoria: every page loads with no console error (a blocked
// inline script or style, a missing asset, a script error would show
// there), shows what the test published (a service down, a gap, a
// reminder, a dead letter), the filters work, the hostile tender title is
// shown as text and never runs, and every form field has a label. Each
// page's screenshot is written under the test's directory (printed with
// -v).
func TestBrowser(t *testing.T) {
	chromiumPath(t)
	f := startFixture(t)
	b := newBrowser(t, 1280, 900)

	b.open(t, f.base+"/?lang=it")
	if got := eval[string](t, b, `document.querySelector('tr[data-service="smartcig"] .badge').textContent`); got != "Non disponibile" {
		t.Errorf("Smart CIG shows %q, want Non disponibile", got)
	}
	if n := eval[int](t, b, `document.querySelectorAll('tr[data-service="smartcig"] svg.timeline rect.tl-out').length`); n != 1 {
		t.Errorf("Smart CIG's timeline has %d outages, want 1", n)
	}
	if lang := eval[string](t, b, `document.documentElement.lang`); lang != "it" {
		t.Errorf("lang %q, want it", lang)
	}
	b.shot(t, "services")
	b.noErrors(t, "services")

	b.open(t, f.base+"/gaps?lang=it")
	if n := eval[int](t, b, `document.querySelectorAll('table.gaps tbody tr').length`); n != 3 {
		t.Errorf("gaps: %d rows, want 3", n)
	}
	if !eval[bool](t, b, `[...document.querySelectorAll('table.gaps tbody tr')].some(r => r.dataset.state === 'service_down' && r.textContent.includes('`+quietTender+`'))`) {
		t.Error("gaps: the tender waiting for Smart CIG is not shown as waiting for a service down")
	}
	if !eval[bool](t, b, `[...document.querySelectorAll('input:not([type=hidden]), select')].every(e => e.labels && e.labels.length > 0)`) {
		t.Error("gaps: a form field has no label")
	}
	b.shot(t, "gaps")
	b.noErrors(t, "gaps")
	if err := chromedp.Do(b.ctx, chromedp.SetValue(chromedp.CSS("#f-kind"), "contribution"), chromedp.Click(chromedp.CSS("form.filters button[type=submit]"))); err != nil {
		t.Fatal(err)
	}
	b.waitLocation(t, "kind=contribution")
	if err := chromedp.Do(b.ctx, chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
		t.Fatal(err)
	}
	if got := eval[[]string](t, b, `[...document.querySelectorAll('table.gaps tbody tr')].map(r => r.dataset.state)`); len(got) != 1 || got[0] != "waiting_cig" {
		t.Errorf("filtered by kind contribution: states %v, want [waiting_cig]", got)
	}
	if got := eval[string](t, b, `document.querySelector('#f-kind').value`); got != "contribution" {
		t.Errorf("the kind filter shows %q after submitting", got)
	}
	b.shot(t, "gaps-filtered")
	b.noErrors(t, "gaps filtered")

	b.open(t, f.base+"/tender?lang=it&id="+url.QueryEscape(hostileTender))
	if got := eval[string](t, b, `document.querySelector('.tender-title').textContent`); got != hostileTitle {
		t.Errorf("the tender's title reads %q, want the text %q", got, hostileTitle)
	}
	if !eval[bool](t, b, `window.__pwned === undefined && document.querySelectorAll('main script, main img, main b').length === 0`) {
		t.Error("the hostile title or authority became markup")
	}
	if !eval[bool](t, b, `!!document.querySelector('tr[data-type="reminder.cig"]') && !!document.querySelector('tr[data-type="deadletter"]')`) {
		t.Error("the tender page lacks its reminder or its dead letter")
	}
	b.shot(t, "tender")
	b.noErrors(t, "tender")

	b.open(t, f.base+"/activity?lang=en")
	if got := eval[string](t, b, `document.querySelector('tr[data-type="reminder.cig"] .badge').textContent`); got != "CIG reminder" {
		t.Errorf("activity: the reminder shows %q, want CIG reminder", got)
	}
	b.shot(t, "activity")
	b.noErrors(t, "activity")
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(`tr[data-type="deadletter"] td a[href^="/activity/"]`))); err != nil {
		t.Fatal(err)
	}
	b.waitLocation(t, fmt.Sprintf("/activity/%d", f.deadLetter))
	if err := chromedp.Do(b.ctx, chromedp.WaitVisible(chromedp.CSS("code.reason"))); err != nil {
		t.Fatal(err)
	}
	if got := eval[string](t, b, `document.querySelector('code.reason').textContent`); got != "invalid_cig" {
		t.Errorf("dead letter reason %q", got)
	}
	if got := eval[string](t, b, `document.querySelector('pre.original').textContent`); got != string(f.input) {
		t.Errorf("dead letter's original bytes read %q, want %q", got, f.input)
	}
	b.shot(t, "deadletter")
	b.noErrors(t, "dead letter")

	phone := newBrowser(t, 390, 844)
	phone.open(t, f.base+"/gaps")
	if !eval[bool](t, phone, `document.documentElement.scrollWidth <= window.innerWidth + 1`) {
		t.Error("on a phone the gaps page is wider than the screen (tables must scroll inside their frame)")
	}
	phone.shot(t, "gaps-phone")
	phone.noErrors(t, "gaps on a phone")
}
