// Package browsertest drives a headless Chromium for the console's
// browser tests (github.com/chromedp/chromedp): it finds the browser or
// skips the test, collects the console's messages, takes screenshots and
// evaluates JavaScript in the page.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath returns the Chromium (or Chrome) to drive, skipping the test
// when none is installed.
func ChromiumPath(t testing.TB) string {
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

// Browser is a headless Chromium tab and what its console said.
type Browser struct {
	// Ctx is the tab's context, for chromedp actions.
	Ctx context.Context
	// Dir is where screenshots go.
	Dir string

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
}

// New starts a headless Chromium, stopped when the test ends; its
// console messages are collected for NoErrors.
func New(t testing.TB, width, height int) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath(t)), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(width, height))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	b := &Browser{Ctx: ctx, Dir: t.TempDir()}
	if d := os.Getenv("PROMEMORIA_SCREENSHOTS"); d != "" {
		// Keep them after the test, for a look.
		b.Dir = d
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

// Open loads a page and waits for its heading.
func (b *Browser) Open(t testing.TB, u string) {
	t.Helper()
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
}

// Shot writes a screenshot of the whole page under the test's directory
// (or PROMEMORIA_SCREENSHOTS, to keep them) and prints its path.
func (b *Browser) Shot(t testing.TB, name string) {
	t.Helper()
	png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.Dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s: %s", name, path)
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// NoErrors fails the test if the console got an error or an exception
// since the last call. A sentinel written to the console marks the point
// up to which every message has arrived.
func (b *Browser) NoErrors(t testing.TB, page string) {
	t.Helper()
	sentinel := fmt.Sprintf("promemoria-test-%d", time.Now().UnixNano())
	Eval[any](t, b, fmt.Sprintf("console.info(%q)", sentinel))
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

// WaitLocation waits until the page's URL contains want.
func (b *Browser) WaitLocation(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		loc, err := chromedp.Run(b.Ctx, chromedp.Location())
		if err == nil && strings.Contains(loc, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page did not reach %q (at %q, %v)", want, loc, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
