package delivery_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/natsserver/natstest"
)

// buildPromemoria builds the binary into a temporary directory.
func buildPromemoria(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "promemoria")
	out, err := exec.Command(goTool, "build", "-o", bin, "github.com/promemoria/promemoria/cmd/promemoria").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer is a log sink the process writes to while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestKilledDuringDelivery runs promemoria notify as a real process,
// SIGKILLs it while it is sending e-mails and starts it again: every
// reminder reaches its recipient, and an e-mail goes twice only if the
// SMTP server had taken it when the process died, before it was recorded
// (the window of docs/guarantees.md: at most the e-mails in flight, 4),
// then with the same Message-ID.
func TestKilledDuringDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and waits out the ack wait (30s)")
	}
	bin := buildPromemoria(t)
	e := newEnv(t)
	box := newMailbox(t)
	box.delay = 40 * time.Millisecond // the server takes a while to say 250: a kill lands mid-delivery
	box.start(t)
	const n = 40
	url := e.nc.ConnectedUrl()
	var logs syncBuffer
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "notify", "--nats-url", url, "--smtp-url", "smtp://"+box.addr,
			"--smtp-from", "promemoria@comune.esempio.it", "--digest-wait", "0s", "--http-listen", "",
			"--delivery-backoff", "50ms", "--delivery-backoff-max", "500ms", "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd
	}
	for i := range n {
		r := e.cigReminder(t, fmt.Sprint(i+1))
		r.ReminderID = fmt.Sprintf("rem-kill-%02d", i+1)
		r.Recipient.Email = fmt.Sprintf("rup%02d@comune.esempio.it", i+1)
		e.publish(t, events.TypeReminderCIG, r.ReminderID, r)
	}
	first := start()
	natstest.WaitFor(t, 30*time.Second, "the first e-mails", func() bool { return box.count() >= 8 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = first.Process.Wait()
	atKill := box.count()
	start()
	// What the dead process had fetched comes back after the ack wait.
	natstest.WaitFor(t, 90*time.Second, "every recipient to get its e-mail", func() bool {
		seen := map[string]bool{}
		for _, m := range box.all() {
			seen[m.rcpts[0]] = true
		}
		return len(seen) == n && e.settled(t)
	})
	byRcpt := map[string][]string{}
	for _, m := range box.all() {
		byRcpt[m.rcpts[0]] = append(byRcpt[m.rcpts[0]], header(m, "Message-Id"))
	}
	twice := 0
	for rcpt, ids := range byRcpt {
		for _, id := range ids[1:] {
			twice++
			if id != ids[0] {
				t.Errorf("%s got two e-mails with different Message-IDs %s and %s", rcpt, ids[0], id)
			}
		}
	}
	t.Logf("%d e-mails to %d recipients; %d taken before the kill; %d sent twice", box.count(), len(byRcpt), atKill, twice)
	if twice > 4 {
		t.Errorf("%d e-mails sent twice, more than the 4 that can be in flight at a kill", twice)
	}
	sent := map[string]bool{}
	for _, r := range e.reports(t) {
		if r.typ != events.TypeDeliverySent {
			t.Errorf("unexpected %s %+v", r.typ, r.data)
		}
		for _, id := range r.data.ReminderIDs {
			if sent[id] {
				t.Errorf("%s reported delivered twice", id)
			}
			sent[id] = true
		}
	}
	if len(sent) != n {
		t.Errorf("%d reminders reported delivered, want %d", len(sent), n)
	}
	if strings.Contains(logs.String(), `"level":"error"`) {
		t.Errorf("errors logged:\n%s", logs.String())
	}
}
