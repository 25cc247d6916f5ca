package delivery

import (
	"testing"
	"time"

	"github.com/promemoria/promemoria/events"
)

func TestBackoff(t *testing.T) {
	o := Options{Backoff: 10 * time.Second, BackoffMax: 10 * time.Minute}
	var total time.Duration
	want := []time.Duration{10, 20, 40, 80, 160, 320, 600, 600, 600}
	for i, w := range want {
		if got := o.backoff(i + 1); got != w*time.Second {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w*time.Second)
		}
		total += o.backoff(i + 1)
	}
	// docs/guarantees.md: 10 attempts take about 40 minutes.
	if total < 40*time.Minute || total > 41*time.Minute {
		t.Errorf("10 attempts wait %s in all", total)
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, c := range []struct {
		filter, subject string
		want            bool
	}{
		{"procurement.delivery.>", "procurement.delivery.sent", true},
		{"procurement.*.sent", "procurement.delivery.sent", true},
		{"procurement.delivery.sent", "procurement.delivery.sent", true},
		{"procurement.reminder.>", "procurement.delivery.sent", false},
		{"procurement.delivery", "procurement.delivery.sent", false},
		{"procurement.delivery.sent.x", "procurement.delivery.sent", false},
		{"procurement.delivery.sent.>", "procurement.delivery.sent", false},
	} {
		if got := subjectMatches(c.filter, c.subject); got != c.want {
			t.Errorf("subjectMatches(%q, %q) = %v", c.filter, c.subject, got)
		}
	}
	// The output stream the worker provisions takes the delivery events.
	ok := false
	for _, f := range (events.Subjects{Prefix: "procurement"}).Outputs() {
		ok = ok || subjectMatches(f, "procurement.delivery.failed")
	}
	if !ok {
		t.Error("events.Subjects.Outputs() does not cover delivery.failed")
	}
}

func TestParseSMTP(t *testing.T) {
	for _, c := range []struct {
		url         string
		host        string
		port        int
		implicitTLS bool
		user, pass  string
	}{
		{"smtp://mail.example.it", "mail.example.it", 587, false, "", ""},
		{"smtps://gare%40pec.comune.example.it:s3cr%2Ft@smtps.pec.example.it", "smtps.pec.example.it", 465, true, "gare@pec.comune.example.it", "s3cr/t"},
		{"smtp://127.0.0.1:1025", "127.0.0.1", 1025, false, "", ""},
	} {
		tg, err := parseSMTP(&SMTPOptions{URL: c.url, From: "Ufficio <gare@comune.example.it>"})
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if tg.host != c.host || tg.port != c.port || tg.implicitTLS != c.implicitTLS || tg.user != c.user || tg.pass != c.pass || tg.domain != "comune.example.it" {
			t.Errorf("%s: %+v", c.url, tg)
		}
	}
	for _, bad := range []string{"http://x", "smtp://", "smtp://h:0"} {
		if _, err := parseSMTP(&SMTPOptions{URL: bad, From: "a@b.it"}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestIDs(t *testing.T) {
	ids := []string{"rem-a", "rem-b"}
	if deliveryID(events.TypeDeliverySent, events.ReceiverEmail, "A@x.it", ids) != deliveryID(events.TypeDeliverySent, events.ReceiverEmail, "a@x.it", ids) {
		t.Error("the delivery id depends on the address's case")
	}
	if deliveryID(events.TypeDeliverySent, events.ReceiverEmail, "a@x.it", ids) == deliveryID(events.TypeDeliveryFailed, events.ReceiverEmail, "a@x.it", ids) {
		t.Error("sent and failed share an id")
	}
	if messageID("a@x.it", "x.it", ids) == messageID("a@x.it", "x.it", ids[:1]) {
		t.Error("the Message-ID does not depend on the ids")
	}
	if k := recordKey(events.ReceiverEmail, "rem-ge37ehkas57htugcllw3lscq"); k != "email.rem-ge37ehkas57htugcllw3lscq" {
		t.Errorf("key %q", k)
	}
	if k := recordKey(events.ReceiverWebhook, "a.b c/*"); k[:10] != "webhook.h-" {
		t.Errorf("key %q of an id that is not a key token", k)
	}
}
