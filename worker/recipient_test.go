package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/worker"
)

// These tests read what promemoria sends as its recipients would, one per
// defect of issue 8, each on a real embedded nats-server.

var rome = func() *time.Location {
	l, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic(err)
	}
	return l
}()

func romeTime(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, rome)
}

// offsetClock runs at the wall clock's pace from base: the worker's time
// in a test that needs a date, mapped back to the wall clock for the
// broker's timers.
type offsetClock struct{ base, r0 time.Time }

func newOffsetClock(base time.Time) offsetClock { return offsetClock{base: base, r0: time.Now()} }

func (c offsetClock) Now() time.Time                 { return c.base.Add(time.Since(c.r0)) }
func (c offsetClock) ToServer(t time.Time) time.Time { return c.r0.Add(t.Sub(c.base)) }

func (c offsetClock) options(o worker.Options) worker.Options {
	o.Now, o.ToServer = c.Now, c.ToServer
	return o
}

var authority = events.Authority{FiscalCode: "80000000000", Name: "Comune di Esempio"}

// pending lists the gaps as `promemoria pending` would at the worker's time.
func pending(t *testing.T, rw *runningWorker, f worker.PendingFilter) []worker.PendingGap {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gaps, err := worker.Pending(ctx, rw.w.State(), f, rw.w.Settle(), rw.w.Now())
	if err != nil {
		t.Fatal(err)
	}
	return gaps
}

func pendingOf(t *testing.T, rw *runningWorker, f worker.PendingFilter, lot string, kind events.Kind) worker.PendingGap {
	t.Helper()
	for _, g := range pending(t, rw, f) {
		if g.LotID == lot && g.Kind == kind {
			return g
		}
	}
	t.Fatalf("no %s gap of lot %s in pending %+v", kind, lot, f)
	return worker.PendingGap{}
}

// only waits for exactly one message matching and returns it.
func only(t *testing.T, b *bus, what string, typ events.Type, tender, lot, op string) out {
	t.Helper()
	waitFor(t, 15*time.Second, what, func() bool { return len(b.out.match(typ, tender, lot, op)) >= 1 })
	got := b.out.match(typ, tender, lot, op)
	if len(got) != 1 {
		b.out.dump()
		t.Fatalf("%s: %d messages, want 1", what, len(got))
	}
	return got[0]
}

func mustContain(t *testing.T, what, text string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(text, p) {
			t.Errorf("%s lacks %q:\n%s", what, p, text)
		}
	}
}

func mustNotContain(t *testing.T, what, text string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if strings.Contains(text, p) {
			t.Errorf("%s contains %q:\n%s", what, p, text)
		}
	}
}

// Defect 1: the contribution is the one of the schedule in force when the
// tender was published, not when the bidder was admitted.
func TestContributionByPublicationDate(t *testing.T) {
	b := newBus(t)
	b.startWorker(testOptions(t))
	for i, tc := range []struct {
		tender    string
		published time.Time
		cents     int64
		table     string
		it, en    string
	}{
		{"T-2021", romeTime(2021, time.May, 4, 10, 0), 3500, "anac-2021", "35,00 €", "€35.00"},
		{"T-2023", romeTime(2023, time.April, 1, 0, 30), 3300, "anac-2023", "33,00 €", "€33.00"},
	} {
		b.publish(events.TypeTenderPublished, fmt.Sprintf("pub-%d", i), time.Now(), events.TenderPublished{
			TenderID: tc.tender, Title: "Lavori", Authority: authority, RUP: rupA,
			PublishedAt: tc.published, OfferDeadline: tc.published.Add(15 * 24 * time.Hour),
			Lots: []events.Lot{{LotID: "1", CIG: "918052266A", BaseAmountCents: 450_000_00}},
		})
		b.publish(events.TypeAdmittedWithReserve, fmt.Sprintf("adm-%d", i), time.Now(),
			events.AdmittedWithReserve{TenderID: tc.tender, LotID: "1", Operator: opX})
		r := only(t, b, "the contribution reminder of "+tc.tender, events.TypeReminderContribution, tc.tender, "1", opX.FiscalCode).Reminder
		if r.ContributionCents != tc.cents || r.ContributionTable != tc.table || r.CIG != "918052266A" {
			t.Errorf("%s: contribution_cents %d contribution_table %q cig %q, want %d %q 918052266A",
				tc.tender, r.ContributionCents, r.ContributionTable, r.CIG, tc.cents, tc.table)
		}
		mustContain(t, tc.tender+" Italian text", r.Message.IT, tc.it, "918052266A")
		mustContain(t, tc.tender+" English text", r.Message.EN, tc.en)
	}
}

// Defect 2: a lot under the exemption threshold opens no contribution gap;
// a date no schedule covers gives a reminder without an amount, never 0 €.
func TestExemptLotsAndUnknownAmounts(t *testing.T) {
	b := newBus(t)
	rw := b.startWorker(testOptions(t))
	published := romeTime(2021, time.May, 4, 10, 0)
	b.publish(events.TypeTenderPublished, "pub-ex", time.Now(), events.TenderPublished{
		TenderID: "T-EX", Title: "Lavori", Authority: authority, RUP: rupA, PublishedAt: published, OfferDeadline: published.Add(15 * 24 * time.Hour),
		Lots: []events.Lot{
			{LotID: "1", CIG: "1234567CE7", BaseAmountCents: 149_999_99},
			{LotID: "2", CIG: "7654321183", BaseAmountCents: 150_000_00},
		},
	})
	b.publish(events.TypeAdmittedWithReserve, "adm-ex-1", time.Now(), events.AdmittedWithReserve{TenderID: "T-EX", LotID: "1", Operator: opX})
	b.publish(events.TypeAdmittedWithReserve, "adm-ex-2", time.Now(), events.AdmittedWithReserve{TenderID: "T-EX", LotID: "2", Operator: opX})
	// A tender published before any configured schedule.
	old := romeTime(2019, time.June, 3, 10, 0)
	b.publish(events.TypeTenderPublished, "pub-old", time.Now(), events.TenderPublished{
		TenderID: "T-OLD", Title: "Lavori", Authority: authority, RUP: rupA, PublishedAt: old, OfferDeadline: old.Add(15 * 24 * time.Hour),
		Lots: []events.Lot{{LotID: "1", CIG: "918052266A", BaseAmountCents: 450_000_00}},
	})
	b.publish(events.TypeAdmittedWithReserve, "adm-old", time.Now(), events.AdmittedWithReserve{TenderID: "T-OLD", LotID: "1", Operator: opX})
	waitAcked(t, rw, 5)

	owed := only(t, b, "the reminder for the 150,000 € lot", events.TypeReminderContribution, "T-EX", "2", opX.FiscalCode).Reminder
	if owed.ContributionCents != 2000 {
		t.Errorf("150,000 € lot: contribution_cents %d, want 2000", owed.ContributionCents)
	}
	if n := len(b.out.match(events.TypeReminderContribution, "T-EX", "1", opX.FiscalCode)); n != 0 {
		t.Errorf("the bidder of the exempt lot got %d reminders", n)
	}
	if n := len(b.out.deadLetters()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	if got := rw.w.Metrics().Snapshot().Exempt; got != 1 {
		t.Errorf("exempt bids counted %d, want 1", got)
	}
	for _, g := range pending(t, rw, worker.PendingFilter{TenderID: "T-EX"}) {
		if g.LotID == "1" {
			t.Errorf("pending lists the exempt lot as an open gap: %+v", g)
		}
	}
	if g := pendingOf(t, rw, worker.PendingFilter{TenderID: "T-EX", All: true}, "1", events.KindContribution); g.State != worker.PendingExempt {
		t.Errorf("pending --all: exempt lot in state %q, want %q", g.State, worker.PendingExempt)
	}

	unknown := only(t, b, "the reminder of the 2019 tender", events.TypeReminderContribution, "T-OLD", "1", opX.FiscalCode).Reminder
	if unknown.ContributionCents != 0 || unknown.ContributionTable != "" {
		t.Errorf("2019 tender: contribution_cents %d contribution_table %q, want none", unknown.ContributionCents, unknown.ContributionTable)
	}
	mustContain(t, "the 2019 reminder", unknown.Message.IT, "Non è stato possibile determinare")
	mustNotContain(t, "the 2019 reminder", unknown.Message.IT, "0,00 €")
	mustNotContain(t, "the 2019 reminder", unknown.Message.EN, "€0.00")
}

// Defect 3: a bidder is asked to pay only once the lot has a CIG; until
// then pending says the gap waits for it, and the reminder follows the CIG.
func TestPaymentReminderWaitsForTheCIG(t *testing.T) {
	b := newBus(t)
	rw := b.startWorker(testOptions(t))
	now := time.Now()
	b.publish(events.TypePortalDown, "down-pcp", now.Add(-time.Hour), events.PortalChange{Services: []string{"pcp"}})
	b.publish(events.TypeTenderPublished, "pub", now, events.TenderPublished{
		TenderID: "T-WAIT", Title: "Fornitura", Authority: authority, RUP: rupA, PublishedAt: now.Add(-50 * time.Minute),
		OfferDeadline: now.Add(30 * 24 * time.Hour), Lots: []events.Lot{{LotID: "1", BaseAmountCents: 450_000_00}},
	})
	b.publish(events.TypeAdmittedWithReserve, "adm", now, events.AdmittedWithReserve{TenderID: "T-WAIT", LotID: "1", Operator: opX})
	waitAcked(t, rw, 3)
	// A reminder is published before its event is acked: none went.
	if n := len(b.out.match(events.TypeReminderContribution, "T-WAIT", "1", opX.FiscalCode)); n != 0 {
		t.Fatalf("%d payment reminders for a lot without CIG", n)
	}
	g := pendingOf(t, rw, worker.PendingFilter{TenderID: "T-WAIT"}, "1", events.KindContribution)
	if g.State != worker.PendingWaitingCIG || !slices.Equal(g.WaitingFor, []string{worker.WaitingCIG}) {
		t.Errorf("contribution gap: state %q waiting for %v, want %q [cig]", g.State, g.WaitingFor, worker.PendingWaitingCIG)
	}
	if g := pendingOf(t, rw, worker.PendingFilter{TenderID: "T-WAIT"}, "1", events.KindCIG); g.State != worker.PendingServiceDown || !slices.Equal(g.WaitingFor, []string{"pcp"}) {
		t.Errorf("CIG gap: state %q waiting for %v, want service_down [pcp]", g.State, g.WaitingFor)
	}

	b.publish(events.TypeCIGAssigned, "cig", time.Now(), events.CIGAssigned{TenderID: "T-WAIT", LotID: "1", CIG: "B00012EADB"})
	r := only(t, b, "the payment reminder after the CIG", events.TypeReminderContribution, "T-WAIT", "1", opX.FiscalCode).Reminder
	if r.CIG != "B00012EADB" || r.Sequence != 1 {
		t.Errorf("payment reminder: cig %q sequence %d, want B00012EADB 1", r.CIG, r.Sequence)
	}
	mustContain(t, "the payment reminder", r.Message.IT, "B00012EADB")
	mustContain(t, "the payment reminder", r.Message.EN, "B00012EADB")
}

// Defect 4: the texts address people correctly, name services, the
// authority and the CIG, number repeats as headings, carry ANAC's notice,
// never claim a service came back when it was never down, and say a
// cancelled tender was cancelled.
func TestTextsReadAsAnOfficerWrites(t *testing.T) {
	b := newBus(t)
	o := testOptions(t)
	o.Policy.RepeatInterval = 2 * time.Second
	rw := b.startWorker(o)
	now := time.Now()
	tender := func(id, cig string) events.TenderPublished {
		return events.TenderPublished{
			TenderID: id, Title: "Manutenzione strade", Authority: authority, RUP: rupA, PublishedAt: now.Add(-time.Hour),
			OfferDeadline: now.Add(30 * 24 * time.Hour), Lots: []events.Lot{{LotID: "1", CIG: cig, BaseAmountCents: 450_000_00}},
		}
	}
	// Payments never reported down: no "available again".
	b.publish(events.TypeTenderPublished, "pub-a", now, tender("T-TXT-A", "918052266A"))
	b.publish(events.TypeAdmittedWithReserve, "adm-a", now, events.AdmittedWithReserve{TenderID: "T-TXT-A", LotID: "1", Operator: opX})
	first := only(t, b, "the first reminder", events.TypeReminderContribution, "T-TXT-A", "1", opX.FiscalCode).Reminder
	mustContain(t, "the first reminder", first.Message.IT, "Spett.le Edilizia X srl", "Comune di Esempio", "918052266A", "pagoPA", "stazione appaltante")
	mustNotContain(t, "the first reminder", first.Message.IT, "Gentile Edilizia", "(payments)", "di nuovo disponibile", "sollecito n.")
	mustNotContain(t, "the first reminder", first.Message.EN, "available again", "35,00")
	mustContain(t, "the first reminder", first.Message.EN, "€33.00")
	waitFor(t, 15*time.Second, "the second reminder", func() bool {
		return len(b.out.match(events.TypeReminderContribution, "T-TXT-A", "1", opX.FiscalCode)) >= 2
	})
	second := b.out.match(events.TypeReminderContribution, "T-TXT-A", "1", opX.FiscalCode)[1].Reminder
	if !strings.HasPrefix(second.Message.IT, "Sollecito n. 2") {
		t.Errorf("the repeat does not open with its number:\n%s", second.Message.IT)
	}
	b.publish(events.TypeTenderCancelled, "cancel-a", time.Now(), events.TenderCancelled{TenderID: "T-TXT-A", Reason: "annullata in autotutela"})
	res := only(t, b, "the cancellation notice", events.TypeReminderResolved, "T-TXT-A", "1", opX.FiscalCode).Resolved
	mustContain(t, "the cancellation notice", res.Message.IT, "annullat")
	mustNotContain(t, "the cancellation notice", res.Message.IT, "regolarizzat")

	// Payments down and back with ANAC's notice: "available again", and
	// the notice is quoted; the payment's resolution names the operator.
	notice := "Comunicato del Presidente: la piattaforma dei pagamenti è di nuovo operativa"
	b.publish(events.TypePortalDown, "down-pay", time.Now().Add(-time.Hour), events.PortalChange{Services: []string{"payments"}})
	b.publish(events.TypeTenderPublished, "pub-b", time.Now(), tender("T-TXT-B", "B00012EADB"))
	b.publish(events.TypeAdmittedWithReserve, "adm-b", time.Now(), events.AdmittedWithReserve{TenderID: "T-TXT-B", LotID: "1", Operator: opX})
	waitAcked(t, rw, 6)
	b.publish(events.TypePortalUp, "up-pay", time.Now(), events.PortalChange{Services: []string{"payments"}, Notice: notice})
	back := only(t, b, "the reminder after the outage", events.TypeReminderContribution, "T-TXT-B", "1", opX.FiscalCode).Reminder
	mustContain(t, "the reminder after the outage", back.Message.IT, "di nuovo disponibile", notice)
	b.publish(events.TypeContributionPaid, "paid-b", time.Now(), events.ContributionPaid{TenderID: "T-TXT-B", LotID: "1", OperatorFiscalCode: opX.FiscalCode, Receipt: "IUV-123"})
	paid := only(t, b, "the payment's resolution", events.TypeReminderResolved, "T-TXT-B", "1", opX.FiscalCode).Resolved
	mustContain(t, "the payment's resolution", paid.Message.IT, "Edilizia X srl", "IUV-123")
	mustNotContain(t, "the payment's resolution", paid.Message.IT, "contributo ANAC di 01234567890")
	checkInvariants(t, b.out)
}

// Defect 5: reminders wait for office hours and working days; escalations
// go at the opening of the last working day before the term.
func TestOfficeHoursAndHolidays(t *testing.T) {
	hours, err := calendar.ParseHours("Mon-Fri 09:00-18:00")
	if err != nil {
		t.Fatal(err)
	}
	office := calendar.Office{Cal: calendar.New(rome), Hours: hours}
	tender := func(id string, published, deadline time.Time) events.TenderPublished {
		return events.TenderPublished{
			TenderID: id, Title: "Lavori", Authority: authority, RUP: rupA, PublishedAt: published,
			OfferDeadline: deadline, Lots: []events.Lot{{LotID: "1", BaseAmountCents: 450_000_00}},
		}
	}
	start := func(t *testing.T, base time.Time) (*bus, *runningWorker, offsetClock) {
		b := newBus(t)
		clock := newOffsetClock(base)
		o := clock.options(testOptions(t))
		o.Policy.Office, o.Policy.RepeatInterval, o.Policy.EscalateBefore = office, 24*time.Hour, 48*time.Hour
		return b, b.startWorker(o), clock
	}

	t.Run("a reminder due before opening time goes at 09:00", func(t *testing.T) {
		b, rw, clock := start(t, romeTime(2026, time.June, 3, 8, 59)) // Wednesday, 60s before opening
		b.publish(events.TypeTenderPublished, "pub", clock.Now(), tender("T-0900", clock.Now().Add(-time.Hour), romeTime(2026, time.June, 30, 12, 0)))
		waitAcked(t, rw, 1)
		if n := len(b.out.all()); n != 0 {
			t.Fatalf("%d messages before opening time", n)
		}
		g := pendingOf(t, rw, worker.PendingFilter{}, "1", events.KindCIG)
		if want := romeTime(2026, time.June, 3, 9, 0); !g.NextDue.Equal(want) {
			t.Errorf("next due %s, want %s", g.NextDue.In(rome), want)
		}
	})

	t.Run("nothing goes on 2 June; the next reminder is the next working day", func(t *testing.T) {
		b, rw, clock := start(t, romeTime(2026, time.June, 2, 10, 30)) // Festa della Repubblica, a Tuesday
		b.publish(events.TypeTenderPublished, "pub", clock.Now(), tender("T-0206", clock.Now().Add(-time.Hour), romeTime(2026, time.June, 30, 12, 0)))
		waitAcked(t, rw, 1)
		if n := len(b.out.all()); n != 0 {
			b.out.dump()
			t.Fatalf("%d messages on a holiday", n)
		}
		g := pendingOf(t, rw, worker.PendingFilter{}, "1", events.KindCIG)
		if want := romeTime(2026, time.June, 3, 9, 0); !g.NextDue.Equal(want) {
			t.Errorf("next due %s, want %s", g.NextDue.In(rome), want)
		}
	})

	t.Run("an escalation due on a Sunday or on 2 June goes the working day before", func(t *testing.T) {
		for _, tc := range []struct {
			name           string
			now, deadline  time.Time
			wantEscalation time.Time
		}{
			{"Sunday", romeTime(2026, time.June, 3, 10, 0), romeTime(2026, time.June, 9, 12, 0), romeTime(2026, time.June, 5, 9, 0)},
			{"2 June", romeTime(2026, time.May, 29, 10, 0), romeTime(2026, time.June, 4, 12, 0), romeTime(2026, time.June, 1, 9, 0)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b, rw, clock := start(t, tc.now)
				// pcp is down: only the escalation is scheduled.
				b.publish(events.TypePortalDown, "down", clock.Now().Add(-2*time.Hour), events.PortalChange{Services: []string{"pcp"}})
				b.publish(events.TypeTenderPublished, "pub", clock.Now(), tender("T-ESC", clock.Now().Add(-time.Hour), tc.deadline))
				waitAcked(t, rw, 2)
				g := pendingOf(t, rw, worker.PendingFilter{}, "1", events.KindCIG)
				if !g.NextDue.Equal(tc.wantEscalation) {
					t.Errorf("escalation due %s, want %s", g.NextDue.In(rome), tc.wantEscalation)
				}
			})
		}
	})
}

// Defect 6: once an outage that overlapped the offer period is over, the
// RUP is advised to suspend or extend the deadline: by how much, until
// when (rolled off weekends and holidays), and under which law.
func TestArt25Advice(t *testing.T) {
	base := romeTime(2021, time.May, 6, 11, 0) // Thursday: services back
	published, deadline := romeTime(2021, time.May, 4, 10, 0), romeTime(2021, time.May, 13, 12, 0)
	outageFrom := romeTime(2021, time.May, 3, 9, 0)
	tender := events.TenderPublished{
		TenderID: "T-ART25", Title: "Fornitura urgente", Authority: authority, RUP: rupB, PublishedAt: published,
		OfferDeadline: deadline, Lots: []events.Lot{{LotID: "1", CIGService: "simog", BaseAmountCents: 450_000_00}},
	}
	settle := testOptions(t).Policy.Settle
	start := func(t *testing.T) (*bus, offsetClock, *runningWorker) {
		b := newBus(t)
		clock := newOffsetClock(base)
		o := clock.options(testOptions(t))
		o.Policy.EscalateBefore = 48 * time.Hour
		return b, clock, b.startWorker(o)
	}
	advices := func(b *bus) []*events.Advice {
		var out []*events.Advice
		for _, o := range b.out.all() {
			if o.Advice != nil {
				out = append(out, o.Advice)
			}
		}
		return out
	}
	down := events.PortalChange{At: outageFrom}
	up := events.PortalChange{At: base}

	var first *events.Advice
	t.Run("tender first", func(t *testing.T) {
		b, clock, _ := start(t)
		b.publish(events.TypePortalDown, "down", clock.Now(), down)
		b.publish(events.TypeTenderPublished, "pub", clock.Now(), tender)
		// A tender whose deadline is near gets an escalation while SIMOG is
		// down, citing the law of its time.
		near := tender
		near.TenderID, near.OfferDeadline = "T-NEAR", romeTime(2021, time.May, 7, 11, 0)
		b.publish(events.TypeTenderPublished, "pub-near", clock.Now(), near)
		esc := only(t, b, "the escalation while SIMOG is down", events.TypeReminderEscalation, "T-NEAR", "1", "").Reminder
		mustContain(t, "the escalation", esc.Message.IT, "art. 79", "50/2016")
		mustNotContain(t, "the escalation", esc.Message.IT, "36/2023")
		if n := len(advices(b)); n != 0 {
			t.Fatalf("%d advices while the outage lasts", n)
		}
		b.publish(events.TypePortalUp, "up", clock.Now(), up)
		mine := func() []*events.Advice {
			return slices.DeleteFunc(advices(b), func(a *events.Advice) bool { return a.TenderID != "T-ART25" })
		}
		waitFor(t, 15*time.Second, "the advice", func() bool { return len(mine()) >= 1 })
		a := mine()[0]
		wantOverlap := int64(base.Sub(published) / time.Second) // 49h: payments, fvoe and SIMOG, counted once
		// 13 May 12:00 + 49h is Saturday 15 May 13:00: Monday 17 May 13:00.
		wantProposed := romeTime(2021, time.May, 17, 13, 0)
		if a.OverlapSeconds != wantOverlap || !a.ProposedDeadline.Equal(wantProposed) || a.LegalBasis != "art. 79, comma 5-bis, d.lgs. 50/2016" ||
			a.Recipient != rupB || !a.Deadline.Equal(deadline) || a.AdviceID == "" {
			t.Errorf("advice %+v\nwant overlap %d, proposed %s, art. 79 and recipient %v", a, wantOverlap, wantProposed, rupB)
		}
		var services []string
		for _, o := range a.Outages {
			services = append(services, o.Service)
		}
		for _, s := range []string{"payments", "fvoe", "simog"} {
			if !slices.Contains(services, s) {
				t.Errorf("advice outages %v lack %s", services, s)
			}
		}
		mustContain(t, "the advice", a.Message.IT, "17/05/2021", "50/2016")
		mustContain(t, "the advice", a.Message.EN, "17 May 2021")
		first = a

		// A later outage in the same offer period: a new advice, new total.
		from2 := clock.Now().Truncate(time.Second)
		b.publish(events.TypePortalDown, "down-2", clock.Now(), events.PortalChange{Services: []string{"payments"}, At: from2})
		b.publish(events.TypePortalUp, "up-2", clock.Now(), events.PortalChange{Services: []string{"payments"}, At: from2.Add(2 * time.Second)})
		waitFor(t, 15*time.Second, "the second advice", func() bool { return len(mine()) >= 2 })
		if got := mine(); len(got) != 2 || got[1].OverlapSeconds != wantOverlap+2 || got[1].AdviceID == got[0].AdviceID {
			t.Errorf("after a second outage: %d advices, last overlap %d (want 2, %d, a new id)", len(got), got[len(got)-1].OverlapSeconds, wantOverlap+2)
		}
		checkInvariants(t, b.out)
	})

	t.Run("outage first", func(t *testing.T) {
		if first == nil {
			t.Skip("the first case failed")
		}
		b, clock, rw := start(t)
		b.publish(events.TypePortalDown, "down", clock.Now(), down)
		b.publish(events.TypePortalUp, "up", clock.Now(), up)
		// The tender arrives once the restoration is applied and settled.
		waitAcked(t, rw, 2)
		waitFor(t, 10*time.Second, "the restoration to settle", func() bool { return clock.Now().After(base.Add(settle)) })
		b.publish(events.TypeTenderPublished, "pub", clock.Now(), tender)
		waitFor(t, 15*time.Second, "the advice", func() bool { return len(advices(b)) >= 1 })
		if a := advices(b)[0]; a.AdviceID != first.AdviceID || a.OverlapSeconds != first.OverlapSeconds || !a.ProposedDeadline.Equal(first.ProposedDeadline) {
			t.Errorf("advice %+v, want the same as when the tender came first: %+v", a, first)
		}
		checkInvariants(t, b.out)
	})
}

// Defect 7: CIGs are taken as people type them, and a code whose check
// digit cannot be verified is accepted and flagged.
func TestCIGsAsTyped(t *testing.T) {
	b := newBus(t)
	rw := b.startWorker(testOptions(t))
	now := time.Now()
	b.publish(events.TypeTenderPublished, "pub", now, events.TenderPublished{
		TenderID: "T-TYPE", Title: "Servizi", Authority: authority, RUP: rupA, PublishedAt: now.Add(-time.Hour),
		OfferDeadline: now.Add(30 * 24 * time.Hour),
		Lots: []events.Lot{
			{LotID: "1", BaseAmountCents: 450_000_00},
			{LotID: "2", BaseAmountCents: 450_000_00},
			{LotID: "3", CIG: " 918052266a ", BaseAmountCents: 450_000_00},
		},
	})
	only(t, b, "the reminder of lot 1", events.TypeReminderCIG, "T-TYPE", "1", "")
	only(t, b, "the reminder of lot 2", events.TypeReminderCIG, "T-TYPE", "2", "")
	if n := len(b.out.match(events.TypeReminderCIG, "T-TYPE", "3", "")); n != 0 {
		t.Errorf("lot 3 was published with a CIG typed in lower case, yet got %d reminders", n)
	}
	b.publish(events.TypeCIGAssigned, "cig-1", time.Now(), events.CIGAssigned{TenderID: "T-TYPE", LotID: "1", CIG: " b00012eadb "})
	b.publish(events.TypeCIGAssigned, "cig-2", time.Now(), events.CIGAssigned{TenderID: "T-TYPE", LotID: "2", CIG: "VA12345678"})
	r1 := only(t, b, "lot 1 resolved", events.TypeReminderResolved, "T-TYPE", "1", "").Resolved
	if r1.Resolution.CIG != "B00012EADB" || r1.CIGUnverified {
		t.Errorf("lot 1: resolution CIG %q unverified %v, want B00012EADB false", r1.Resolution.CIG, r1.CIGUnverified)
	}
	mustContain(t, "lot 1's notice", r1.Message.IT, "B00012EADB")
	r2 := only(t, b, "lot 2 resolved", events.TypeReminderResolved, "T-TYPE", "2", "").Resolved
	if r2.Resolution.CIG != "VA12345678" || !r2.CIGUnverified {
		t.Errorf("lot 2: resolution CIG %q unverified %v, want VA12345678 true", r2.Resolution.CIG, r2.CIGUnverified)
	}
	if n := len(b.out.deadLetters()); n != 0 {
		b.out.dump()
		t.Errorf("%d dead letters", n)
	}
	if got := rw.w.Metrics().Snapshot().CIGUnverified; got != 1 {
		t.Errorf("unverified CIGs counted %d, want 1", got)
	}
}

// TestRecordsOfAnEarlierVersion checks the upgrade path: a contribution gap
// stored by a version that did not record the lot's CIG is brought in line
// with its tender when a restoration reaches it, and is reminded with the
// CIG instead of waiting for one for ever.
func TestRecordsOfAnEarlierVersion(t *testing.T) {
	b := newBus(t)
	rw := b.startWorker(testOptions(t))
	now := time.Now()
	b.publish(events.TypePortalDown, "down", now.Add(-time.Hour), events.PortalChange{Services: []string{"payments"}})
	b.publish(events.TypeTenderPublished, "pub", now, events.TenderPublished{
		TenderID: "T-OLD-REC", Title: "Lavori", Authority: authority, RUP: rupA, PublishedAt: now.Add(-time.Hour),
		OfferDeadline: now.Add(30 * 24 * time.Hour), Lots: []events.Lot{{LotID: "1", CIG: "918052266A", BaseAmountCents: 450_000_00}},
	})
	b.publish(events.TypeAdmittedWithReserve, "adm", now, events.AdmittedWithReserve{TenderID: "T-OLD-REC", LotID: "1", Operator: opX})
	waitAcked(t, rw, 3)

	// Rewrite the gap as the earlier version stored it: no cig, no amount
	// fields.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv := rw.w.State()
	keys, err := kv.ListKeysFiltered(ctx, "gap.payments.>")
	if err != nil {
		t.Fatal(err)
	}
	var key string
	for k := range keys.Keys() {
		key = k
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	var rec map[string]any
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["cig"] != "918052266A" {
		t.Fatalf("the stored gap has cig %v, want the lot's", rec["cig"])
	}
	for _, f := range []string{"cig", "contribution_known", "contribution_table", "authority", "published_at"} {
		delete(rec, f)
	}
	old, _ := json.Marshal(rec)
	if _, err := kv.Update(ctx, key, old, e.Revision()); err != nil {
		t.Fatal(err)
	}

	b.publish(events.TypePortalUp, "up", time.Now(), events.PortalChange{Services: []string{"payments"}})
	r := only(t, b, "the reminder of the old record", events.TypeReminderContribution, "T-OLD-REC", "1", opX.FiscalCode).Reminder
	if r.CIG != "918052266A" || r.ContributionCents != 3300 {
		t.Errorf("reminder of the old record: cig %q contribution_cents %d, want 918052266A and 3300", r.CIG, r.ContributionCents)
	}
	mustContain(t, "the reminder of the old record", r.Message.IT, "918052266A", "Comune di Esempio")
}
