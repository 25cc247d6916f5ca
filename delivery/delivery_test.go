package delivery_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/promemoria/promemoria/delivery"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/natsserver/natstest"
	"github.com/promemoria/promemoria/worker"
)

func TestContractNames(t *testing.T) {
	if delivery.OutputStream != worker.StreamOutput {
		t.Errorf("delivery reads %s, the worker writes %s", delivery.OutputStream, worker.StreamOutput)
	}
}

// TestDigestThreeLots: three lots of one tender lack their CIG; their
// reminders to the RUP go as one e-mail once digest_wait has passed, and
// not before.
func TestDigestThreeLots(t *testing.T) {
	e := newEnv(t)
	box := newMailbox(t)
	box.start(t)
	clk := &clock{t: time.Date(2021, 5, 5, 9, 0, 0, 0, time.UTC)}
	s, _ := e.stage(t, delivery.Options{SMTP: smtpOpts(box), DigestWait: 2 * time.Minute, Now: clk.Now})
	for _, lot := range []string{"1", "2", "3"} {
		e.publish(t, events.TypeReminderCIG, "rem-cig-lot-"+lot, e.cigReminder(t, lot))
	}
	natstest.WaitFor(t, 10*time.Second, "the stage to hold the three reminders", func() bool { return s.Metrics().Held() == 3 })
	clk.Advance(time.Minute)
	// Nothing is sent before digest_wait: the stage holds the reminders
	// across several of its ticks (25ms) without sending.
	natstest.WaitFor(t, 5*time.Second, "the stage to keep holding", func() bool { return s.Metrics().Held() == 3 })
	if n := box.count(); n != 0 {
		t.Fatalf("%d e-mails before digest_wait", n)
	}
	clk.Advance(time.Minute)
	natstest.WaitFor(t, 10*time.Second, "one e-mail", func() bool { return box.count() == 1 && e.settled(t) })
	m := box.all()[0]
	if !slices.Equal(m.rcpts, []string{rup.Email}) {
		t.Errorf("recipients %v, want the RUP only", m.rcpts)
	}
	if got, want := subject(t, m), "[promemoria] 3 solleciti: CIG da integrare – Comune di Esempio"; got != want {
		t.Errorf("subject %q, want %q", got, want)
	}
	p := parts(t, m)
	text, html := p["text/plain"], p["text/html"]
	for _, lot := range []string{"lotto 1", "lotto 2", "lotto 3"} {
		if !strings.Contains(text, lot) {
			t.Errorf("the text part does not list %s:\n%s", lot, text)
		}
	}
	if strings.Index(text, "Gentile Maria Rossi") > strings.Index(text, "Dear Maria Rossi") {
		t.Errorf("the Italian text is not first:\n%s", text)
	}
	if strings.Count(html, "<tr><td>") != 6 { // a table per language
		t.Errorf("the HTML part has %d rows, not one per lot:\n%s", strings.Count(html, "<tr><td>"), html)
	}
	mid := strings.Trim(header(m, "Message-Id"), "<>")
	if !strings.HasPrefix(mid, "promemoria.") || !strings.HasSuffix(mid, "@comune.esempio.it") {
		t.Errorf("Message-ID %q", mid)
	}
	if header(m, "Reply-To") != "<ufficio.gare@comune.esempio.it>" || header(m, "Auto-Submitted") != "auto-generated" {
		t.Errorf("Reply-To %q, Auto-Submitted %q", header(m, "Reply-To"), header(m, "Auto-Submitted"))
	}
	reps := e.reports(t)
	if len(reps) != 1 || reps[0].typ != events.TypeDeliverySent {
		t.Fatalf("delivery events %+v, want one delivery.sent", reps)
	}
	d := reps[0].data
	if !slices.Equal(d.ReminderIDs, []string{"rem-cig-lot-1", "rem-cig-lot-2", "rem-cig-lot-3"}) || d.MessageID != mid ||
		d.Receiver != events.ReceiverEmail || d.Address != rup.Email || d.Attempts != 1 || !d.At.Equal(clk.Now()) ||
		!slices.Equal(d.TenderIDs, []string{"2021/0042"}) {
		t.Errorf("delivery.sent %+v", d)
	}
	if s.Metrics().Sent() != 1 || s.Metrics().Held() != 0 {
		t.Errorf("sent %d, held %d", s.Metrics().Sent(), s.Metrics().Held())
	}
}

// TestBidderCc: a bidder's contribution reminder goes to the bidder with
// the RUP in Cc, alone when digest_wait is 0.
func TestBidderCc(t *testing.T) {
	e := newEnv(t)
	box := newMailbox(t)
	box.start(t)
	e.stage(t, delivery.Options{SMTP: smtpOpts(box)})
	e.publish(t, events.TypeReminderContribution, "rem-contribution-1", e.contributionReminder(t))
	natstest.WaitFor(t, 10*time.Second, "the e-mail", func() bool { return box.count() == 1 && e.settled(t) })
	m := box.all()[0]
	if got := slices.Sorted(slices.Values(m.rcpts)); !slices.Equal(got, []string{operator.Email, rup.Email}) {
		t.Errorf("SMTP recipients %v, want the bidder and the RUP", got)
	}
	if to, cc := header(m, "To"), header(m, "Cc"); !strings.Contains(to, operator.Email) || strings.Contains(to, rup.Email) || !strings.Contains(cc, rup.Email) {
		t.Errorf("To %q, Cc %q: want the bidder in To, the RUP in Cc", to, cc)
	}
	text := parts(t, m)["text/plain"]
	if !strings.HasPrefix(text, "Promemoria – versamento del contributo ANAC") || !strings.Contains(text, "English version") ||
		!strings.Contains(text, "Spett.le Edilnord S.r.l.") || !strings.Contains(text, "35,00 €") {
		t.Errorf("text:\n%s", text)
	}
	if got := subject(t, m); got != "[promemoria] Contributo ANAC da versare – rif. 2021/0042, lotto 1 – Comune di Esempio" {
		t.Errorf("subject %q", got)
	}
	reps := e.reports(t)
	if len(reps) != 1 || !slices.Equal(reps[0].data.CC, []string{rup.Email}) || reps[0].data.Address != operator.Email {
		t.Errorf("delivery events %+v", reps)
	}
}

// TestSMTPDownThenUp: the SMTP server is down; the reminder is retried
// and delivered once it is back, once.
func TestSMTPDownThenUp(t *testing.T) {
	e := newEnv(t)
	box := newMailbox(t)
	s, _ := e.stage(t, delivery.Options{SMTP: smtpOpts(box), MaxAttempts: 1000})
	e.publish(t, events.TypeReminderCIG, "rem-cig-lot-1", e.cigReminder(t, "1"))
	natstest.WaitFor(t, 10*time.Second, "retries while the server is down", func() bool { return s.Metrics().Retries() >= 3 })
	box.start(t)
	natstest.WaitFor(t, 20*time.Second, "the e-mail", func() bool { return box.count() >= 1 && e.settled(t) })
	reps := e.reports(t)
	if n := box.count(); n != 1 || len(reps) != 1 || reps[0].typ != events.TypeDeliverySent || reps[0].data.Attempts < 4 {
		t.Errorf("%d e-mails, delivery events %+v: want one e-mail, one delivery.sent after several attempts", n, reps)
	}
}

// TestSMTPRejected: a 550 is a permanent refusal: delivery.failed at the
// first attempt, and the message is not tried again.
func TestSMTPRejected(t *testing.T) {
	e := newEnv(t)
	box := newMailbox(t)
	box.reject = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such mailbox"}
	box.start(t)
	s, _ := e.stage(t, delivery.Options{SMTP: smtpOpts(box), MaxAttempts: 1000})
	e.publish(t, events.TypeReminderCIG, "rem-cig-lot-1", e.cigReminder(t, "1"))
	natstest.WaitFor(t, 10*time.Second, "delivery.failed", func() bool { return len(e.reports(t)) == 1 && e.settled(t) })
	d := e.reports(t)[0]
	if d.typ != events.TypeDeliveryFailed || d.data.Reason != events.FailRejected || d.data.Attempts != 1 ||
		!strings.Contains(d.data.Error, "550") || !slices.Equal(d.data.ReminderIDs, []string{"rem-cig-lot-1"}) {
		t.Errorf("delivery event %+v, want delivery.failed rejected with the 550 after one attempt", d)
	}
	if s.Metrics().Retries() != 0 || s.Metrics().Failed() != 1 || box.count() != 0 {
		t.Errorf("retries %d, failed %d, e-mails %d", s.Metrics().Retries(), s.Metrics().Failed(), box.count())
	}
}

// TestRetriesExhausted: a temporary failure that lasts is reported after
// delivery_max_attempts tries.
func TestRetriesExhausted(t *testing.T) {
	e := newEnv(t)
	box := newMailbox(t)
	box.reject = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	box.start(t)
	e.stage(t, delivery.Options{SMTP: smtpOpts(box), MaxAttempts: 3})
	e.publish(t, events.TypeReminderCIG, "rem-cig-lot-1", e.cigReminder(t, "1"))
	natstest.WaitFor(t, 10*time.Second, "delivery.failed", func() bool { return len(e.reports(t)) == 1 && e.settled(t) })
	if d := e.reports(t)[0]; d.typ != events.TypeDeliveryFailed || d.data.Reason != events.FailExhausted || d.data.Attempts != 3 {
		t.Errorf("delivery event %+v, want retries_exhausted after 3 attempts", d)
	}
}

// hookServer is a real HTTP server that checks signatures; answers gives
// the status of each call in turn (then 200).
type hookServer struct {
	*httptest.Server
	mu      sync.Mutex
	bodies  [][]byte
	valid   []bool
	answers []int
}

func newHookServer(t *testing.T, secret string, answers ...int) *hookServer {
	h := &hookServer{answers: answers}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ok := r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/cloudevents+json" &&
			delivery.Verify(secret, body, r.Header.Get(delivery.SignatureHeader))
		h.mu.Lock()
		h.bodies = append(h.bodies, body)
		h.valid = append(h.valid, ok)
		status := http.StatusOK
		if len(h.answers) > 0 {
			status, h.answers = h.answers[0], h.answers[1:]
		}
		h.mu.Unlock()
		if !ok {
			status = http.StatusUnauthorized
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) calls() ([][]byte, []bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bodies), slices.Clone(h.valid)
}

const secret = "0123456789abcdef-test-secret"

// TestWebhookSigned: the webhook receives the CloudEvent as published,
// with a signature the receiving server verifies.
func TestWebhookSigned(t *testing.T) {
	e := newEnv(t)
	hook := newHookServer(t, secret)
	e.stage(t, delivery.Options{Webhook: &delivery.WebhookOptions{URL: hook.URL + "/hooks?token=abc", Secret: secret}})
	e.publish(t, events.TypeReminderCIG, "rem-cig-lot-1", e.cigReminder(t, "1"))
	natstest.WaitFor(t, 10*time.Second, "the webhook call", func() bool { return len(e.reports(t)) == 1 && e.settled(t) })
	bodies, valid := hook.calls()
	if len(bodies) != 1 || !valid[0] || !strings.Contains(string(bodies[0]), `"id":"rem-cig-lot-1"`) {
		t.Fatalf("calls %q (signature valid: %v)", bodies, valid)
	}
	d := e.reports(t)[0].data
	if d.Receiver != events.ReceiverWebhook || d.HTTPStatus != 200 || strings.Contains(d.Address, "token") {
		t.Errorf("delivery.sent %+v (the address must not show the query)", d)
	}
	if delivery.Verify("another secret of 16+", bodies[0], delivery.Sign(secret, bodies[0])) {
		t.Error("a signature verifies under another secret")
	}
}

// TestWebhookRetried: a webhook answering 500, then 200, gets the event
// twice and the delivery is reported once; a 404 is not retried.
func TestWebhookRetried(t *testing.T) {
	e := newEnv(t)
	hook := newHookServer(t, secret, 500, 200, 404)
	s, _ := e.stage(t, delivery.Options{Webhook: &delivery.WebhookOptions{URL: hook.URL, Secret: secret}})
	e.publish(t, events.TypeReminderCIG, "rem-cig-lot-1", e.cigReminder(t, "1"))
	natstest.WaitFor(t, 10*time.Second, "the delivery", func() bool { return len(e.reports(t)) == 1 && e.settled(t) })
	bodies, _ := hook.calls()
	reps := e.reports(t)
	if len(bodies) != 2 || reps[0].typ != events.TypeDeliverySent || reps[0].data.Attempts != 2 || s.Metrics().Sent() != 1 {
		t.Fatalf("%d calls, events %+v: want 2 calls and one delivery.sent after 2 attempts", len(bodies), reps)
	}
	e.publish(t, events.TypeReminderCIG, "rem-cig-lot-2", e.cigReminder(t, "2"))
	natstest.WaitFor(t, 10*time.Second, "the refusal", func() bool { return len(e.reports(t)) == 2 && e.settled(t) })
	if d := e.reports(t)[1]; d.typ != events.TypeDeliveryFailed || d.data.Reason != events.FailRejected || d.data.HTTPStatus != 404 || d.data.Attempts != 1 {
		t.Errorf("after a 404: %+v", d)
	}
}

// TestUndecodable: an output message that is not a reminder is reported
// as delivery.failed, counted and acknowledged; the stage goes on.
func TestUndecodable(t *testing.T) {
	e := newEnv(t)
	box := newMailbox(t)
	box.start(t)
	s, _ := e.stage(t, delivery.Options{SMTP: smtpOpts(box)})
	e.publishRaw(t, "procurement.reminder.cig", "", []byte("not json"))
	bad := e.cigReminder(t, "9")
	bad.Recipient.Email = "Maria Rossi <maria@x.it>"
	e.publish(t, events.TypeReminderCIG, "rem-bad-address", bad)
	e.publish(t, events.TypeReminderCIG, "rem-cig-lot-1", e.cigReminder(t, "1"))
	natstest.WaitFor(t, 10*time.Second, "three reports", func() bool { return len(e.reports(t)) == 3 && e.settled(t) })
	var failed []report
	for _, r := range e.reports(t) {
		if r.typ == events.TypeDeliveryFailed {
			failed = append(failed, r)
		}
	}
	if len(failed) != 2 || s.Metrics().Undecodable() != 2 || box.count() != 1 {
		t.Fatalf("failed %+v, undecodable %d, e-mails %d", failed, s.Metrics().Undecodable(), box.count())
	}
	for _, f := range failed {
		if f.data.Reason != events.FailUndecodable || f.data.Sequence == 0 || f.data.Stream != delivery.OutputStream || f.data.Error == "" {
			t.Errorf("undecodable report %+v", f.data)
		}
	}
}

// TestRestartDoesNotResend: a reminder delivered before a restart comes
// back to a fresh consumer; its record stops a second e-mail, and the
// delivery.sent republished is the same event.
func TestRestartDoesNotResend(t *testing.T) {
	e := newEnv(t)
	box := newMailbox(t)
	box.start(t)
	_, stop := e.stage(t, delivery.Options{SMTP: smtpOpts(box)})
	e.publish(t, events.TypeReminderCIG, "rem-cig-lot-1", e.cigReminder(t, "1"))
	natstest.WaitFor(t, 10*time.Second, "the e-mail", func() bool { return box.count() == 1 && e.settled(t) })
	stop()
	// The consumer forgets it delivered anything: the message comes back.
	if err := e.js.DeleteConsumer(t.Context(), delivery.OutputStream, delivery.Consumer); err != nil {
		t.Fatal(err)
	}
	s, _ := e.stage(t, delivery.Options{SMTP: smtpOpts(box)})
	natstest.WaitFor(t, 10*time.Second, "the duplicate to be recognised", func() bool { return s.Metrics().Duplicates() == 1 && e.settled(t) })
	if n, reps := box.count(), e.reports(t); n != 1 || len(reps) != 1 {
		t.Errorf("%d e-mails and %d delivery events after the restart, want 1 and 1", n, len(reps))
	}
}

// TestBothReceivers: with e-mail and webhook, a reminder is acknowledged
// once both have delivered it.
func TestBothReceivers(t *testing.T) {
	e := newEnv(t)
	box := newMailbox(t)
	box.start(t)
	hook := newHookServer(t, secret, 503, 503)
	e.stage(t, delivery.Options{SMTP: smtpOpts(box), Webhook: &delivery.WebhookOptions{URL: hook.URL, Secret: secret}})
	e.publish(t, events.TypeAdviceExtension, "adv-1", events.Advice{
		AdviceID: "adv-1", TenderID: "2021/0042", Authority: comune, Recipient: rup,
		PublishedAt: time.Date(2021, 5, 4, 7, 0, 0, 0, time.UTC), Deadline: time.Date(2021, 5, 20, 10, 0, 0, 0, time.UTC),
		OverlapSeconds: 3600, ProposedDeadline: time.Date(2021, 5, 20, 11, 0, 0, 0, time.UTC), LegalBasis: "art. 79, comma 5-bis, d.lgs. 50/2016",
		Message: events.Message{IT: "Proposta di proroga del termine", EN: "Proposed extension of the deadline"},
	})
	natstest.WaitFor(t, 10*time.Second, "both deliveries", func() bool { return len(e.reports(t)) == 2 && e.settled(t) })
	got := map[events.Receiver]bool{}
	for _, r := range e.reports(t) {
		got[r.data.Receiver] = r.typ == events.TypeDeliverySent
	}
	if !got[events.ReceiverEmail] || !got[events.ReceiverWebhook] || box.count() != 1 {
		t.Errorf("reports %+v, e-mails %d", e.reports(t), box.count())
	}
}

// TestConsumerDeleted: the stage's consumer is deleted under it; it is
// not ready until it has re-created it, then delivers again.
func TestConsumerDeleted(t *testing.T) {
	e := newEnv(t)
	box := newMailbox(t)
	box.start(t)
	s, _ := e.stage(t, delivery.Options{SMTP: smtpOpts(box)})
	e.publish(t, events.TypeReminderCIG, "rem-cig-lot-1", e.cigReminder(t, "1"))
	natstest.WaitFor(t, 10*time.Second, "the first e-mail", func() bool { return box.count() == 1 && e.settled(t) })
	if err := e.js.DeleteConsumer(t.Context(), delivery.OutputStream, delivery.Consumer); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 30*time.Second, "the stage to notice", func() bool { return !s.Ready() })
	natstest.WaitFor(t, 30*time.Second, "the stage to re-create its consumer", s.Ready)
	e.publish(t, events.TypeReminderCIG, "rem-cig-lot-2", e.cigReminder(t, "2"))
	natstest.WaitFor(t, 10*time.Second, "the second e-mail", func() bool { return box.count() == 2 && e.settled(t) })
	if s.Metrics().Duplicates() != 1 {
		t.Errorf("duplicates %d: the first reminder came back to the new consumer and must be recognised", s.Metrics().Duplicates())
	}
}
