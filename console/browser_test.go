package console_test

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/promemoria/promemoria/console/browsertest"
)

// TestBrowser drives each page of the console in headless Chromium on a
// running promemoria: every page loads with no console error (a blocked
// inline script or style, a missing asset, a script error would show
// there), shows what the test published (a service down, a gap, a
// reminder, a dead letter), the filters work, the hostile tender title is
// shown as text and never runs, and every form field has a label. Each
// page's screenshot is written under the test's directory (printed with
// -v).
func TestBrowser(t *testing.T) {
	browsertest.ChromiumPath(t)
	f := startFixture(t)
	b := browsertest.New(t, 1280, 900)

	b.Open(t, f.base+"/?lang=it")
	if got := browsertest.Eval[string](t, b, `document.querySelector('tr[data-service="smartcig"] .badge').textContent`); got != "Non disponibile" {
		t.Errorf("Smart CIG shows %q, want Non disponibile", got)
	}
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll('tr[data-service="smartcig"] svg.timeline rect.tl-out').length`); n != 1 {
		t.Errorf("Smart CIG's timeline has %d outages, want 1", n)
	}
	if lang := browsertest.Eval[string](t, b, `document.documentElement.lang`); lang != "it" {
		t.Errorf("lang %q, want it", lang)
	}
	b.Shot(t, "services")
	b.NoErrors(t, "services")

	b.Open(t, f.base+"/gaps?lang=it")
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll('table.gaps tbody tr').length`); n != 3 {
		t.Errorf("gaps: %d rows, want 3", n)
	}
	if !browsertest.Eval[bool](t, b, `[...document.querySelectorAll('table.gaps tbody tr')].some(r => r.dataset.state === 'service_down' && r.textContent.includes('`+quietTender+`'))`) {
		t.Error("gaps: the tender waiting for Smart CIG is not shown as waiting for a service down")
	}
	if !browsertest.Eval[bool](t, b, `[...document.querySelectorAll('input:not([type=hidden]), select')].every(e => e.labels && e.labels.length > 0)`) {
		t.Error("gaps: a form field has no label")
	}
	b.Shot(t, "gaps")
	b.NoErrors(t, "gaps")
	if err := chromedp.Do(b.Ctx, chromedp.SetValue(chromedp.CSS("#f-kind"), "contribution"), chromedp.Click(chromedp.CSS("form.filters button[type=submit]"))); err != nil {
		t.Fatal(err)
	}
	b.WaitLocation(t, "kind=contribution")
	if err := chromedp.Do(b.Ctx, chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
		t.Fatal(err)
	}
	if got := browsertest.Eval[[]string](t, b, `[...document.querySelectorAll('table.gaps tbody tr')].map(r => r.dataset.state)`); len(got) != 1 || got[0] != "waiting_cig" {
		t.Errorf("filtered by kind contribution: states %v, want [waiting_cig]", got)
	}
	if got := browsertest.Eval[string](t, b, `document.querySelector('#f-kind').value`); got != "contribution" {
		t.Errorf("the kind filter shows %q after submitting", got)
	}
	b.Shot(t, "gaps-filtered")
	b.NoErrors(t, "gaps filtered")

	b.Open(t, f.base+"/tender?lang=it&id="+url.QueryEscape(hostileTender))
	if got := browsertest.Eval[string](t, b, `document.querySelector('.tender-title').textContent`); got != hostileTitle {
		t.Errorf("the tender's title reads %q, want the text %q", got, hostileTitle)
	}
	if !browsertest.Eval[bool](t, b, `window.__pwned === undefined && document.querySelectorAll('main script, main img, main b').length === 0`) {
		t.Error("the hostile title or authority became markup")
	}
	if !browsertest.Eval[bool](t, b, `!!document.querySelector('tr[data-type="reminder.cig"]') && !!document.querySelector('tr[data-type="deadletter"]')`) {
		t.Error("the tender page lacks its reminder or its dead letter")
	}
	b.Shot(t, "tender")
	b.NoErrors(t, "tender")

	b.Open(t, f.base+"/activity?lang=en")
	if got := browsertest.Eval[string](t, b, `document.querySelector('tr[data-type="reminder.cig"] .badge').textContent`); got != "CIG reminder" {
		t.Errorf("activity: the reminder shows %q, want CIG reminder", got)
	}
	b.Shot(t, "activity")
	b.NoErrors(t, "activity")
	if err := chromedp.Do(b.Ctx, chromedp.Click(chromedp.CSS(`tr[data-type="deadletter"] td a[href^="/activity/"]`))); err != nil {
		t.Fatal(err)
	}
	b.WaitLocation(t, fmt.Sprintf("/activity/%d", f.deadLetter))
	if err := chromedp.Do(b.Ctx, chromedp.WaitVisible(chromedp.CSS("code.reason"))); err != nil {
		t.Fatal(err)
	}
	if got := browsertest.Eval[string](t, b, `document.querySelector('code.reason').textContent`); got != "invalid_cig" {
		t.Errorf("dead letter reason %q", got)
	}
	if got := browsertest.Eval[string](t, b, `document.querySelector('pre.original').textContent`); got != string(f.input) {
		t.Errorf("dead letter's original bytes read %q, want %q", got, f.input)
	}
	b.Shot(t, "deadletter")
	b.NoErrors(t, "dead letter")

	phone := browsertest.New(t, 390, 844)
	phone.Open(t, f.base+"/gaps")
	if !browsertest.Eval[bool](t, phone, `document.documentElement.scrollWidth <= window.innerWidth + 1`) {
		t.Error("on a phone the gaps page is wider than the screen (tables must scroll inside their frame)")
	}
	phone.Shot(t, "gaps-phone")
	phone.NoErrors(t, "gaps on a phone")
}
