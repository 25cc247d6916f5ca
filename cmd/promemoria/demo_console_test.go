package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/promemoria/promemoria/console/browsertest"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDemoKeep runs the demo with --keep and opens the console on its data
// in headless Chromium, as a newcomer would: each page loads without a
// console error and shows the story. Its screenshots go under the test's
// directory; with PROMEMORIA_DOCS_SCREENSHOTS=1 they also replace the
// ones in docs/, which the README shows.
func TestDemoKeep(t *testing.T) {
	browsertest.ChromiumPath(t)
	if testing.Short() {
		t.Skip("the demo takes about 20 seconds")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errOut := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- runDemoContext(ctx, []string{"--keep", "--http-listen", "127.0.0.1:0", "--speed", "3"}, noEnv, out, errOut)
	}()
	addr := regexp.MustCompile(`\n    (http://127\.0\.0\.1:\d+/)\n`)
	var base string
	deadline := time.Now().Add(90 * time.Second)
	for base == "" {
		if m := addr.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("demo --keep ended with %d before serving the console\nstderr: %s\nstdout:\n%s", code, errOut, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo never printed the console's address:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	b := browsertest.New(t, 1280, 860)
	shots := []struct{ name, path, check string }{
		{"console-services", "?lang=it", `document.querySelectorAll('svg.timeline rect.tl-out').length >= 7`},
		{"console-gaps", "gaps?lang=it&state=all", `document.querySelectorAll('table.gaps tbody tr[data-state="resolved"]').length === 5`},
		{"console-tender", "tender?lang=it&id=ASP-2021-0112", `!!document.querySelector('tr[data-type="reminder.escalation"]') && !!document.querySelector('tr[data-type="deadletter"]') && !!document.querySelector('tr[data-type="advice.deadline_extension"]')`},
		{"console-activity", "activity?lang=en", `!!document.querySelector('tr[data-type="reminder.contribution"]') && !!document.querySelector('tr[data-type="deadletter"]')`},
	}
	for _, s := range shots {
		b.Open(t, base+s.path)
		if !browsertest.Eval[bool](t, b, s.check) {
			t.Errorf("%s: %s does not hold", s.name, s.check)
		}
		b.NoErrors(t, s.name)
		b.Shot(t, s.name)
		if os.Getenv("PROMEMORIA_DOCS_SCREENSHOTS") == "1" {
			png, err := os.ReadFile(filepath.Join(b.Dir, s.name+".png"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("..", "..", "docs", s.name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("demo --keep exited %d after Ctrl-C\nstderr: %s", code, errOut)
		}
	case <-time.After(30 * time.Second):
		t.Error("demo --keep did not stop")
	}
}
