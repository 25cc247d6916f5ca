package worker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/promemoria/promemoria/events"
)

func acked(rw *runningWorker) func() int64 {
	return func() int64 { return rw.w.Metrics().Snapshot().EventsAcked }
}

func waitAcked(t *testing.T, rw *runningWorker, n int64) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d events acked", n), func() bool { return acked(rw)() >= n })
}

func tenderB1(id string) events.TenderPublished {
	return events.TenderPublished{
		TenderID: id, Title: "Fornitura", RUP: rupB, PublishedAt: time.Now().Add(-time.Hour),
		OfferDeadline: time.Now().Add(30 * 24 * time.Hour),
		Lots:          []events.Lot{{LotID: "1", BaseAmountCents: 50_000_000}},
	}
}

// TestDuplicateEvents sends the same event twice, with and without the
// Nats-Msg-Id header (so the stream's own deduplication cannot help): one
// gap, one reminder.
func TestDuplicateEvents(t *testing.T) {
	b := newBus(t)
	o := testOptions(t)
	o.Policy.RepeatInterval = time.Hour
	rw := b.startWorker(o)
	at := time.Now()
	data := tenderB1("T-DUP")
	// No portal event ever: the services are up, gaps are reminded at once.
	b.publishWith(events.TypeTenderPublished, "dup-1", at, data, false)
	b.publishWith(events.TypeTenderPublished, "dup-1", at, data, false)
	b.publishWith(events.TypeTenderPublished, "dup-1", at, data, true)
	b.publishWith(events.TypeTenderPublished, "dup-1", at, data, true) // dropped by the stream
	waitAcked(t, rw, 3)
	waitFor(t, 10*time.Second, "reminder", func() bool { return len(b.out.match(events.TypeReminderCIG, "T-DUP", "1", "")) == 1 })
	if d := rw.w.Metrics().Snapshot().Duplicates; d != 2 {
		t.Errorf("duplicates counted: %d, want 2", d)
	}
	if n := openGaps(t, b); n != 1 {
		t.Errorf("%d gaps, want 1", n)
	}
	if n := len(b.out.all()); n != 1 {
		b.out.dump()
		t.Errorf("%d outputs, want 1", n)
	}
}

// TestSameEventReserialised sends one event twice, the second time with
// its data's keys in another order and spaced out, as another JSON library
// would write it: it is the same event (a duplicate, applied once), not an
// id reused for other content.
func TestSameEventReserialised(t *testing.T) {
	b := newBus(t)
	rw := b.startWorker(testOptions(t))
	at := time.Now().UTC().Truncate(time.Second)
	tp := tenderB1("T-RESER")
	b.publishWith(events.TypeTenderPublished, "reser-1", at, tp, false)
	waitAcked(t, rw, 1)
	var fields map[string]json.RawMessage
	raw, _ := json.Marshal(tp)
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	var data bytes.Buffer
	data.WriteString("{ ")
	for i, k := range keys {
		if i > 0 {
			data.WriteString(" , ")
		}
		fmt.Fprintf(&data, "%q : %s", k, fields[k])
	}
	data.WriteString(" }")
	if bytes.Equal(data.Bytes(), raw) {
		t.Fatal("the re-serialised data is byte for byte the original: the test proves nothing")
	}
	env := events.Envelope{SpecVersion: "1.0", ID: "reser-1", Source: "test://portal", Type: events.TypeTenderPublished,
		Time: at, DataContentType: "application/json", Data: data.Bytes()}
	body, _ := json.Marshal(env)
	b.publishRaw(events.Subjects{Prefix: "procurement"}.Of(events.TypeTenderPublished), body, "reser-1", false)
	waitAcked(t, rw, 2)
	if n := len(b.out.deadLetters()); n != 0 {
		t.Errorf("%d dead letters: the same event re-serialised was taken for an id reused (%s)", n, b.out.deadLetters()[0].Dead.Reason)
	}
	if d := rw.w.Metrics().Snapshot().Duplicates; d != 1 {
		t.Errorf("duplicates counted: %d, want 1", d)
	}
}

// TestIDReusedWithDifferentContent dead-letters a second event that reuses
// a source+id for different data.
func TestIDReusedWithDifferentContent(t *testing.T) {
	b := newBus(t)
	rw := b.startWorker(testOptions(t))
	b.publishWith(events.TypeTenderPublished, "reused", time.Now(), tenderB1("T-1"), false)
	waitAcked(t, rw, 1)
	b.publishWith(events.TypeTenderPublished, "reused", time.Now(), tenderB1("T-2"), false)
	waitFor(t, 10*time.Second, "dead letter", func() bool { return len(b.out.deadLetters()) == 1 })
	if dl := b.out.deadLetters()[0].Dead; dl.Reason != events.ReasonIDReused || !bytes.Contains(dl.Data, []byte("T-2")) {
		t.Errorf("dead letter: %+v", dl)
	}
	if len(b.out.match(events.TypeReminderCIG, "T-2", "1", "")) != 0 {
		t.Error("the event with a reused id was applied")
	}
}

// TestOutOfOrder checks that events judged by their own time give the same
// outcome whatever order they arrive in.
func TestOutOfOrder(t *testing.T) {
	now := time.Now()
	type step struct {
		typ  events.Type
		at   time.Time
		data any
	}
	published := tenderB1("T-OOO")
	cases := []struct {
		name      string
		steps     []step
		reminders int // reminder.cig or reminder.contribution expected
		gaps      int // open gap records expected
	}{
		{"portal.down older than portal.up does not reopen the outage", []step{
			{events.TypePortalUp, now.Add(-time.Minute), events.PortalChange{Services: []string{"pcp"}}},
			{events.TypePortalDown, now.Add(-2 * time.Minute), events.PortalChange{Services: []string{"pcp"}}},
			{events.TypeTenderPublished, now, published},
		}, 1, 1},
		{"portal.down newer than portal.up keeps the gap waiting", []step{
			{events.TypePortalDown, now.Add(-time.Minute), events.PortalChange{Services: []string{"pcp"}}},
			{events.TypePortalUp, now.Add(-2 * time.Minute), events.PortalChange{Services: []string{"pcp"}}},
			{events.TypeTenderPublished, now, published},
		}, 0, 1},
		{"cig assigned before the tender arrives", []step{
			{events.TypeCIGAssigned, now, events.CIGAssigned{TenderID: "T-OOO", LotID: "1", CIG: "918052266A"}},
			{events.TypeTenderPublished, now.Add(-time.Second), published},
		}, 0, 0},
		{"payment before the admission with reserve", []step{
			{events.TypeTenderPublished, now, events.TenderPublished{TenderID: "T-OOO", Title: "x", RUP: rupB, PublishedAt: now.Add(-time.Hour), OfferDeadline: now.Add(time.Hour), Lots: []events.Lot{{LotID: "1", CIG: "918052266A"}}}},
			{events.TypeContributionPaid, now, events.ContributionPaid{TenderID: "T-OOO", LotID: "1", OperatorFiscalCode: opX.FiscalCode, Receipt: "IUV-1"}},
			{events.TypeAdmittedWithReserve, now.Add(-time.Second), events.AdmittedWithReserve{TenderID: "T-OOO", LotID: "1", Operator: opX}},
		}, 0, 0},
		{"cancellation before publication", []step{
			{events.TypeTenderCancelled, now, events.TenderCancelled{TenderID: "T-OOO", Reason: "annullata"}},
			{events.TypeTenderPublished, now.Add(-time.Second), published},
			{events.TypeAdmittedWithReserve, now.Add(-time.Second), events.AdmittedWithReserve{TenderID: "T-OOO", LotID: "1", Operator: opX}},
		}, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBus(t)
			rw := b.startWorker(testOptions(t))
			for i, s := range tc.steps {
				b.publish(s.typ, fmt.Sprintf("ooo-%d", i), s.at, s.data)
			}
			waitAcked(t, rw, int64(len(tc.steps)))
			count := func() int {
				return len(b.out.match(events.TypeReminderCIG, "T-OOO", "1", "")) + len(b.out.match(events.TypeReminderContribution, "T-OOO", "1", opX.FiscalCode))
			}
			if tc.reminders > 0 {
				waitFor(t, 10*time.Second, "reminder", func() bool { return count() >= tc.reminders })
			}
			if n := openGaps(t, b); n != tc.gaps {
				t.Errorf("%d open gaps, want %d", n, tc.gaps)
			}
			if n := count(); n != tc.reminders {
				b.out.dump()
				t.Errorf("%d reminders, want %d", n, tc.reminders)
			}
			checkInvariants(t, b.out)
		})
	}
}

// TestFlapInsideSettle: a portal.down inside the settle window cancels the
// restoration; reminders go only after the next up has settled.
func TestFlapInsideSettle(t *testing.T) {
	b := newBus(t)
	o := testOptions(t)
	o.Policy.Settle = 2 * time.Second
	rw := b.startWorker(o)
	b.publish(events.TypePortalDown, "d1", time.Now().Add(-time.Hour), events.PortalChange{Services: []string{"pcp"}})
	b.publish(events.TypeTenderPublished, "t1", time.Now(), tenderB1("T-FLAP"))
	b.publish(events.TypePortalUp, "u1", time.Now(), events.PortalChange{Services: []string{"pcp"}})
	b.publish(events.TypePortalDown, "d2", time.Now().Add(500*time.Millisecond), events.PortalChange{Services: []string{"pcp"}})
	waitAcked(t, rw, 4)
	// Wait past the first up's settle window, until its pass has fired and
	// found the service down again.
	waitFor(t, 10*time.Second, "the first restoration pass", func() bool { return rw.w.Metrics().Snapshot().TimersFired >= 1 })
	if n := len(b.out.all()); n != 0 {
		b.out.dump()
		t.Fatalf("%d messages after a flap inside settle", n)
	}
	up2 := time.Now()
	b.publish(events.TypePortalUp, "u2", up2, events.PortalChange{Services: []string{"pcp"}})
	waitFor(t, 10*time.Second, "reminder after the second up", func() bool { return len(b.out.match(events.TypeReminderCIG, "T-FLAP", "1", "")) == 1 })
	got := b.out.match(events.TypeReminderCIG, "T-FLAP", "1", "")[0]
	if d := got.At.Sub(up2); d < o.Policy.Settle-o.Policy.Tolerance {
		t.Errorf("reminder %s after the second up, before settle (%s)", d, o.Policy.Settle)
	}
	if o := got.Reminder.Outage; o == nil || o.To.IsZero() || o.To.Before(up2.Add(-time.Millisecond)) {
		t.Errorf("reminder's outage %+v should end at the second up %s", o, up2)
	}
}

// TestMalformedInput dead-letters each bad input with its reason and its
// original bytes, and keeps processing the good events around them.
func TestMalformedInput(t *testing.T) {
	b := newBus(t)
	o := testOptions(t)
	o.Policy.RepeatInterval = time.Hour
	rw := b.startWorker(o)
	valid := func(typ events.Type, id string, data string) []byte {
		return []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"test","type":%q,"time":%q,"datacontenttype":"application/json","data":%s}`,
			id, typ, time.Now().UTC().Format(time.RFC3339), data))
	}
	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	cases := []struct {
		name    string
		subject string
		body    []byte
		reason  events.Reason
	}{
		{"not JSON", "procurement.tender.published", []byte("tender pubblicato!"), events.ReasonNotJSON},
		{"invalid UTF-8", "procurement.tender.published", []byte{'{', 0xff, 0xfe, '}'}, events.ReasonInvalidUTF8},
		{"oversized", "procurement.tender.published", valid(events.TypeTenderPublished, "big", `{"title":"`+strings.Repeat("x", 70000)+`"}`), events.ReasonOversized},
		{"unknown type", "procurement.tender.updated", valid("tender.updated", "u", `{"tender_id":"x"}`), events.ReasonUnknownType},
		{"type does not match subject", "procurement.tender.cancelled", valid(events.TypeTenderPublished, "mm", `{"tender_id":"x"}`), events.ReasonTypeMismatch},
		{"missing tender_id", "procurement.tender.cancelled", valid(events.TypeTenderCancelled, "mf", `{"reason":"x"}`), events.ReasonMissingField},
		{"wrong field type", "procurement.tender.cancelled", valid(events.TypeTenderCancelled, "wt", `{"tender_id":42}`), events.ReasonInvalidField},
		{"bad time", "procurement.portal.up", []byte(`{"specversion":"1.0","id":"bt","source":"s","type":"portal.up","time":"ieri","data":{}}`), events.ReasonBadTime},
		{"time far in the future", "procurement.portal.up", []byte(`{"specversion":"1.0","id":"ft","source":"s","type":"portal.up","time":"2999-01-01T00:00:00Z","data":{}}`), events.ReasonBadTime},
		{"deeply nested", "procurement.tender.cancelled", valid(events.TypeTenderCancelled, "dn", deep), events.ReasonTooDeep},
		{"bad CIG", "procurement.tender.cig_assigned", valid(events.TypeCIGAssigned, "bc", `{"tender_id":"x","lot_id":"1","cig":"12345"}`), events.ReasonInvalidCIG},
		{"empty", "procurement.tender.published", []byte{}, events.ReasonNotJSON},
	}
	for i, tc := range cases {
		b.publishRaw(tc.subject, tc.body, fmt.Sprintf("bad-%d", i), false)
		b.publish(events.TypeTenderPublished, fmt.Sprintf("good-%d", i), time.Now(), tenderB1(fmt.Sprintf("T-GOOD-%d", i)))
	}
	waitAcked(t, rw, int64(2*len(cases)))
	waitFor(t, 10*time.Second, "all dead letters", func() bool { return len(b.out.deadLetters()) == len(cases) })
	dls := b.out.deadLetters()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var found *events.DeadLetter
			var raw json.RawMessage
			for _, o := range dls {
				if bytes.Equal(o.Dead.Data, tc.body) {
					found, raw = o.Dead, o.Env.Data
				}
			}
			if found == nil {
				t.Fatalf("no dead letter carries the original bytes")
			}
			if found.Reason != tc.reason || found.Subject != tc.subject || found.Error == "" {
				t.Errorf("dead letter reason %q subject %q error %q; want reason %q", found.Reason, found.Subject, found.Error, tc.reason)
			}
			if len(b.out.match(events.TypeReminderCIG, fmt.Sprintf("T-GOOD-%d", i), "1", "")) != 1 {
				t.Errorf("the good event after it was not processed")
			}
			if len(tc.body) == 0 && !bytes.Contains(raw, []byte(`"data":null`)) {
				t.Errorf("the dead letter of an empty input: %s, want \"data\":null as events/README.md says", raw)
			}
		})
	}
	waitFor(t, 10*time.Second, "good events reminded", func() bool {
		n := 0
		for i := range cases {
			n += len(b.out.match(events.TypeReminderCIG, fmt.Sprintf("T-GOOD-%d", i), "1", ""))
		}
		return n == len(cases)
	})
	if s := rw.w.Metrics().Snapshot(); s.DeadLettered != int64(len(cases)) {
		t.Errorf("dead letters counted %d, want %d", s.DeadLettered, len(cases))
	}
	// One truth: the inputs consumed as dead letters are the dead letters.
	consumed := metricSum(t, rw, "promemoria_events_consumed_total", "outcome", "dead_letter")
	dead := metricSum(t, rw, "promemoria_dead_letters_total", "", "")
	if consumed != float64(len(cases)) || dead != float64(len(cases)) {
		t.Errorf("events_consumed_total{outcome=dead_letter} %v and dead_letters_total %v, want both %d", consumed, dead, len(cases))
	}
}

// metricSum sums the samples of a metric of the worker's registry, those
// with label = value if label is not empty.
func metricSum(t *testing.T, rw *runningWorker, name, label, value string) float64 {
	t.Helper()
	families, err := rw.w.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == label && l.GetValue() == value)
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
