package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/worker"
)

var (
	rupA = events.Person{Name: "Maria Rossi", Email: "rup.a@comune.example.it"}
	rupB = events.Person{Name: "Luca Bianchi", Email: "rup.b@asl.example.it"}
	opX  = events.Operator{FiscalCode: "01234567890", Name: "Edilizia X srl", Email: "x@pec.example.it"}
	opY  = events.Operator{FiscalCode: "09876543210", Name: "Servizi Y spa", Email: "y@pec.example.it"}
)

type story struct {
	t  *testing.T
	b  *bus
	t0 time.Time
	n  int
}

func (s *story) send(typ events.Type, data any) {
	s.t.Helper()
	s.n++
	s.b.publish(typ, fmt.Sprintf("ev-%d", s.n), time.Now(), data)
}

// TestMay2021Story replays the May 2021 outage: the portal goes down,
// tenders are published without CIG and bids admitted with reserve;
// payments come back first, Smart CIG later, PCP last. Reminders go in that
// order to the right people, repeat, escalate before the deadline, and stop
// with a "resolved" once each gap is closed.
func TestMay2021Story(t *testing.T) {
	runStory(t, nil)
}

// TestRestartMidStory kills the worker (no drain) in the middle of the
// story and starts a new one: nothing is lost and nothing is sent twice.
func TestRestartMidStory(t *testing.T) {
	runStory(t, func(s *story, rw **runningWorker) {
		(*rw).kill()
		*rw = s.b.startWorker(testOptions(s.t))
	})
}

func runStory(t *testing.T, midway func(*story, **runningWorker)) {
	if testing.Short() {
		t.Skip("story runs for ~20s of real time")
	}
	b := newBus(t)
	rw := b.startWorker(testOptions(t))
	s := &story{t: t, b: b, t0: time.Now()}
	c := b.out

	// The portal goes down for every service.
	b.publish(events.TypePortalDown, "down-1", s.t0.Add(-time.Hour), events.PortalChange{Notice: "https://www.anticorruzione.it/-/avviso-disservizio"})
	// Tenders published during the outage: A1 waits for Smart CIG, A2 has
	// its CIG, B1 waits for PCP (the default service).
	s.send(events.TypeTenderPublished, events.TenderPublished{
		TenderID: "T-A", Title: "Manutenzione strade", Authority: events.Authority{FiscalCode: "80000000000", Name: "Comune di Esempio"},
		RUP: rupA, PublishedAt: s.t0.Add(-50 * time.Minute), OfferDeadline: s.t0.Add(16 * time.Second),
		Lots: []events.Lot{{LotID: "A1", CIGService: "smartcig", BaseAmountCents: 20_000_000}, {LotID: "A2", CIG: "B00012EADB", BaseAmountCents: 90_000_000}},
	})
	s.send(events.TypeTenderPublished, events.TenderPublished{
		TenderID: "T-B", Title: "Fornitura farmaci", Authority: events.Authority{FiscalCode: "90000000000", Name: "ASL Esempio"},
		RUP: rupB, PublishedAt: s.t0.Add(-40 * time.Minute), OfferDeadline: s.t0.Add(time.Hour),
		Lots: []events.Lot{{LotID: "B1", BaseAmountCents: 25_000_000}, {LotID: "B2", CIG: "918052266A", BaseAmountCents: 25_000_000}},
	})
	// The bids are on lots that have their CIG: a bidder cannot pay for a
	// lot without one.
	s.send(events.TypeAdmittedWithReserve, events.AdmittedWithReserve{TenderID: "T-A", LotID: "A2", Operator: opX})
	s.send(events.TypeAdmittedWithReserve, events.AdmittedWithReserve{TenderID: "T-B", LotID: "B2", Operator: opY, RegulariseBy: s.t0.Add(time.Hour)})
	waitFor(t, 10*time.Second, "4 gaps opened", func() bool { return openGaps(t, b) == 4 })
	if n := len(c.all()); n != 0 {
		c.dump()
		t.Fatalf("%d messages emitted while every service is down", n)
	}

	// Payments come back: contribution reminders go, CIG reminders wait.
	paymentsUp := time.Now()
	b.publish(events.TypePortalUp, "up-payments", paymentsUp, events.PortalChange{Services: []string{"payments"}})
	waitFor(t, 10*time.Second, "first contribution reminders", func() bool {
		return len(c.match(events.TypeReminderContribution, "T-A", "A2", opX.FiscalCode)) >= 1 &&
			len(c.match(events.TypeReminderContribution, "T-B", "B2", opY.FiscalCode)) >= 1
	})
	x1 := c.match(events.TypeReminderContribution, "T-A", "A2", opX.FiscalCode)[0]
	if got := x1.At.Sub(paymentsUp); got < 900*time.Millisecond {
		t.Errorf("contribution reminder %s after payments up, before settle (1s)", got)
	}
	r := x1.Reminder
	if r.Sequence != 1 || r.Recipient.Email != opX.Email || len(r.CC) != 1 || r.CC[0].Email != rupA.Email ||
		r.Service != "payments" || r.Outage == nil || r.ServiceUpSince.IsZero() || r.ContributionCents != 9000 || r.CIG != "B00012EADB" ||
		!strings.Contains(r.Message.IT, "contributo") || r.Message.EN == "" || r.ReminderID != x1.Env.ID {
		t.Errorf("first contribution reminder to X is wrong: %+v", r)
	}
	if n := len(c.match(events.TypeReminderCIG, "T-A", "A1", "")) + len(c.match(events.TypeReminderCIG, "T-B", "B1", "")); n != 0 {
		t.Errorf("%d CIG reminders while smartcig and pcp are down", n)
	}

	if midway != nil {
		midway(s, &rw)
	}

	// Y pays: its gap is resolved.
	s.send(events.TypeContributionPaid, events.ContributionPaid{TenderID: "T-B", LotID: "B2", OperatorFiscalCode: opY.FiscalCode, Receipt: "IUV-000111222333"})
	waitFor(t, 10*time.Second, "Y resolved", func() bool {
		return len(c.match(events.TypeReminderResolved, "T-B", "B2", opY.FiscalCode)) == 1
	})
	res := c.match(events.TypeReminderResolved, "T-B", "B2", opY.FiscalCode)[0].Resolved
	if res.Resolution.By != events.TypeContributionPaid || res.Resolution.Receipt != "IUV-000111222333" || res.Recipient.Email != opY.Email || res.RemindersSent < 1 {
		t.Errorf("resolution of Y is wrong: %+v", res)
	}

	// Smart CIG comes back: A1's CIG reminder goes to the RUP; B1 (PCP) waits.
	b.publish(events.TypePortalUp, "up-smartcig", time.Now(), events.PortalChange{Services: []string{"smartcig"}})
	waitFor(t, 10*time.Second, "CIG reminder for A1", func() bool { return len(c.match(events.TypeReminderCIG, "T-A", "A1", "")) >= 1 })
	a1 := c.match(events.TypeReminderCIG, "T-A", "A1", "")[0].Reminder
	if a1.Recipient.Email != rupA.Email || a1.Service != "smartcig" || a1.Sequence != 1 || a1.Deadline.IsZero() {
		t.Errorf("CIG reminder for A1 is wrong: %+v", a1)
	}
	if len(c.match(events.TypeReminderCIG, "T-A", "A2", "")) != 0 {
		t.Error("A2 was published with its CIG but got a reminder")
	}
	if len(c.match(events.TypeReminderCIG, "T-B", "B1", "")) != 0 {
		t.Error("B1 reminded while pcp is down")
	}
	// X is reminded again every 3s while unpaid.
	waitFor(t, 10*time.Second, "second reminder to X", func() bool {
		return len(c.match(events.TypeReminderContribution, "T-A", "A2", opX.FiscalCode)) >= 2
	})
	// A1's offer deadline is 16s after the start; escalation 6s before.
	waitFor(t, 20*time.Second, "escalation for A1", func() bool { return len(c.match(events.TypeReminderEscalation, "T-A", "A1", "")) == 1 })
	esc := c.match(events.TypeReminderEscalation, "T-A", "A1", "")[0]
	if esc.Reminder.Recipient.Email != rupA.Email || !esc.Reminder.Escalation {
		t.Errorf("escalation is wrong: %+v", esc.Reminder)
	}
	if early := s.t0.Add(10 * time.Second).Sub(esc.At); early > time.Second {
		t.Errorf("escalation %s early", early)
	}

	// PCP comes back: B1's CIG reminder goes.
	b.publish(events.TypePortalUp, "up-pcp", time.Now(), events.PortalChange{Services: []string{"pcp"}})
	waitFor(t, 10*time.Second, "CIG reminder for B1", func() bool { return len(c.match(events.TypeReminderCIG, "T-B", "B1", "")) >= 1 })
	if got := c.match(events.TypeReminderCIG, "T-B", "B1", "")[0].Reminder.Recipient.Email; got != rupB.Email {
		t.Errorf("B1 reminder went to %s", got)
	}

	// A CIG that fails the check digits is dead-lettered; the gap stays open.
	s.send(events.TypeCIGAssigned, events.CIGAssigned{TenderID: "T-A", LotID: "A1", CIG: "B00012EADC"})
	waitFor(t, 10*time.Second, "invalid CIG dead-lettered", func() bool { return len(c.deadLetters()) == 1 })
	if dl := c.deadLetters()[0].Dead; dl.Reason != events.ReasonInvalidCIG || !strings.Contains(string(dl.Data), "B00012EADC") || dl.Subject != "procurement.tender.cig_assigned" {
		t.Errorf("dead letter is wrong: %+v", dl)
	}
	good, err := cig.GenerateSmart('Z', 0x3885F48)
	if err != nil {
		t.Fatal(err)
	}
	s.send(events.TypeCIGAssigned, events.CIGAssigned{TenderID: "T-A", LotID: "A1", CIG: good})
	waitFor(t, 10*time.Second, "A1 resolved", func() bool { return len(c.match(events.TypeReminderResolved, "T-A", "A1", "")) == 1 })
	if got := c.match(events.TypeReminderResolved, "T-A", "A1", "")[0].Resolved.Resolution; got.CIG != good || got.By != events.TypeCIGAssigned {
		t.Errorf("A1 resolution: %+v", got)
	}

	// Cancelling the tenders closes everything left.
	s.send(events.TypeTenderCancelled, events.TenderCancelled{TenderID: "T-B", Reason: "annullata in autotutela"})
	s.send(events.TypeTenderCancelled, events.TenderCancelled{TenderID: "T-A", Reason: "revoca"})
	waitFor(t, 10*time.Second, "all resolved", func() bool {
		return len(c.match(events.TypeReminderResolved, "T-B", "B1", "")) == 1 &&
			len(c.match(events.TypeReminderResolved, "T-A", "A2", opX.FiscalCode)) == 1
	})
	waitFor(t, 10*time.Second, "no gap left and no gap timer pending", func() bool {
		return openGaps(t, b) == 0 && pendingGapTimers(t, b) == 0
	})
	if n := len(c.match(events.TypeReminderResolved, "T-B", "B2", opY.FiscalCode)); n != 1 {
		t.Errorf("Y resolved %d times", n)
	}
	// Order: the first contribution reminder came before the first CIG reminder.
	first := map[events.Type]uint64{}
	for _, o := range c.all() {
		if _, ok := first[o.Env.Type]; !ok {
			first[o.Env.Type] = o.Seq
		}
	}
	if first[events.TypeReminderContribution] > first[events.TypeReminderCIG] {
		t.Error("a CIG reminder went before the first contribution reminder")
	}
	checkInvariants(t, c)
	t.Logf("story: %d messages on the output stream, worker counters %+v", len(c.all()), rw.w.Metrics().Snapshot())
}

// openGaps counts the open gap records in the state bucket (resolved gaps
// stay as closed records).
func openGaps(t *testing.T, b *bus) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := b.js.KeyValue(ctx, worker.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	l, err := kv.ListKeysFiltered(ctx, "gap.>")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for k := range l.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		var g struct {
			Open bool `json:"open"`
		}
		if err := json.Unmarshal(e.Value(), &g); err != nil {
			t.Fatal(err)
		}
		if g.Open {
			n++
		}
	}
	return n
}

// pendingGapTimers counts the gap schedules waiting in the timer stream.
func pendingGapTimers(t *testing.T, b *bus) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := b.js.Stream(ctx, worker.StreamTimers)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("_promemoria.procurement.sched.gap.>"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}
