package reliability

import (
	"fmt"
	"testing"
	"time"

	"github.com/promemoria/promemoria/events"
)

// The tests in this file reproduce, each in a few seconds and without
// faults, what the six reliability tests found at scale.

// TestMergeOnlyChangesAreKept: a change to a gap that comes only from its
// tender record (no message to send, no timer to move) must be stored.
//   - A bid admitted with reserve (no regularise_by, so no escalation timer)
//     is paid during the outage: its gap is closed and must never be
//     reminded after the restoration.
//   - A bid admitted before its tender is known has no RUP; once the tender
//     is published the RUP must be in copy of the operator's reminder.
func TestMergeOnlyChangesAreKept(t *testing.T) {
	srv := startNATS(t, "n1")
	c := dial(t, srv.URL())
	startWorker(t, "worker", srv.URL(), "--repeat-interval", "1h")
	col := c.collect()
	src := "https://eproc.example.it/merge"
	now := time.Now()
	rup := events.Person{Name: "Maria Rossi", Email: "rup@comune.example.it"}
	opPaid := events.Operator{FiscalCode: "01234567890", Name: "Paga Srl", Email: "paga@pec.example.it"}
	opLate := events.Operator{FiscalCode: "09876543210", Name: "Attende Spa", Email: "attende@pec.example.it"}
	published := events.TenderPublished{TenderID: "T-MERGE", Title: "Gara", RUP: rup, PublishedAt: now.Add(-time.Hour),
		OfferDeadline: now.Add(30 * 24 * time.Hour), Lots: []events.Lot{{LotID: "1", CIG: "B00012EADB", BaseAmountCents: 50_000_000}}}

	c.publish(event(events.TypePortalDown, src, "down", now.Add(-2*time.Hour), events.PortalChange{Services: []string{"payments"}}))
	// opLate is admitted before the tender is known.
	c.publish(event(events.TypeAdmittedWithReserve, src, "adm-late", now.Add(-50*time.Minute), events.AdmittedWithReserve{TenderID: "T-MERGE", LotID: "1", Operator: opLate}))
	waitFor(t, 10*time.Second, "admission applied", c.inputsDone)
	c.publish(event(events.TypeTenderPublished, src, "pub", now.Add(-45*time.Minute), published))
	c.publish(event(events.TypeAdmittedWithReserve, src, "adm-paid", now.Add(-40*time.Minute), events.AdmittedWithReserve{TenderID: "T-MERGE", LotID: "1", Operator: opPaid}))
	waitFor(t, 10*time.Second, "tender and admission applied", c.inputsDone)
	c.publish(event(events.TypeContributionPaid, src, "paid", now.Add(-30*time.Minute), events.ContributionPaid{TenderID: "T-MERGE", LotID: "1", OperatorFiscalCode: opPaid.FiscalCode, Receipt: "IUV-1"}))
	waitFor(t, 10*time.Second, "payment applied", c.inputsDone)

	recs, err := c.gapRecords()
	if err != nil {
		t.Fatal(err)
	}
	for k, g := range recs {
		switch g.OperatorFiscalCode() {
		case opPaid.FiscalCode:
			t.Errorf("after contribution_paid the gap %s is still stored open=%v (resolution %v): the closing merge was not committed", k, g.Open, g.Resolution)
		case opLate.FiscalCode:
			if g.RUP.Email != rup.Email {
				t.Errorf("after tender.published the gap %s still has RUP %+v: the merge of the tender's RUP was not committed", k, g.RUP)
			}
		}
	}

	c.publish(event(events.TypePortalUp, src, "up", time.Now(), events.PortalChange{Services: []string{"payments"}}))
	c.waitUntil(t, col, 20*time.Second, "reminder to the operator still unpaid", func() bool {
		return col.count(func(o out) bool { return o.Reminder != nil && o.Reminder.OperatorFiscalCode == opLate.FiscalCode }) == 1 && quiet(c)
	})
	for _, o := range col.all() {
		switch {
		case o.Reminder != nil && o.Reminder.OperatorFiscalCode == opPaid.FiscalCode:
			t.Errorf("%s reminded after paying during the outage: %s", opPaid.Name, o)
		case o.Reminder != nil && (len(o.Reminder.CC) != 1 || o.Reminder.CC[0].Email != rup.Email):
			t.Errorf("reminder to %s without the RUP in copy: cc %v", o.Reminder.Recipient.Email, o.Reminder.CC)
		}
	}
	t.Logf("outputs: %v", col.all())
}

// TestStaleDerivationDoesNotReopen: two replicas apply, at the same time,
// a second tender.published of a tender with many lots (which re-derives
// every gap of the tender, one after the other) and the contribution_paid
// that closes its last gap. The payment's replica closes and removes the
// gap; the publication's replica, still working from the tender as it was
// before the payment, must not create the gap again.
func TestStaleDerivationDoesNotReopen(t *testing.T) {
	const tenders, lots = 40, 80
	srv := startNATS(t, "n1")
	c := dial(t, srv.URL())
	for i := range 2 {
		startWorker(t, fmt.Sprintf("replica-%d", i+1), srv.URL(), "--concurrency", "4")
	}
	src := "https://eproc.example.it/stale"
	now := time.Now()
	c.publish(event(events.TypePortalDown, src, "down", now.Add(-2*time.Hour), events.PortalChange{}))
	pub := func(i int) events.TenderPublished {
		p := events.TenderPublished{TenderID: fmt.Sprintf("T-STALE-%02d", i), Title: "Gara", RUP: events.Person{Name: "R", Email: "r@comune.example.it"},
			PublishedAt: now.Add(-time.Hour), OfferDeadline: now.Add(30 * 24 * time.Hour)}
		for l := range lots {
			p.Lots = append(p.Lots, events.Lot{LotID: fmt.Sprintf("L%03d", l)})
		}
		return p
	}
	op := func(i int) events.Operator {
		return events.Operator{FiscalCode: fmt.Sprintf("OP%02d", i), Name: "Operatore", Email: "op@pec.example.it"}
	}
	var first []input
	for i := range tenders {
		first = append(first,
			event(events.TypeTenderPublished, src, fmt.Sprintf("pub-%d", i), now.Add(-50*time.Minute), pub(i)),
			event(events.TypeAdmittedWithReserve, src, fmt.Sprintf("adm-%d", i), now.Add(-45*time.Minute),
				events.AdmittedWithReserve{TenderID: fmt.Sprintf("T-STALE-%02d", i), LotID: "L000", Operator: op(i), RegulariseBy: now.Add(30 * 24 * time.Hour)}))
	}
	for _, in := range first {
		c.publish(in)
	}
	waitFor(t, 60*time.Second, "tenders and admissions applied", c.inputsDone)
	for i := range tenders {
		c.publish(event(events.TypeTenderPublished, src, fmt.Sprintf("pub2-%d", i), now.Add(-40*time.Minute), pub(i)))
		// Let the re-publication's replica write the tender record first.
		time.Sleep(3 * time.Millisecond)
		c.publish(event(events.TypeContributionPaid, src, fmt.Sprintf("paid-%d", i), now.Add(-30*time.Minute),
			events.ContributionPaid{TenderID: fmt.Sprintf("T-STALE-%02d", i), LotID: "L000", OperatorFiscalCode: op(i).FiscalCode, Receipt: "IUV"}))
	}
	waitFor(t, 60*time.Second, "re-publications and payments applied", c.inputsDone)
	recs, err := c.gapRecords()
	if err != nil {
		t.Fatal(err)
	}
	reopened := 0
	for k, g := range recs {
		if g.Kind == events.KindContribution {
			reopened++
			t.Errorf("gap %s of a paid bid is stored open=%v, tender_revision %d, updated %s: a stale derivation created it again",
				k, g.Open, g.TenderRevision, g.UpdatedAt.Format(time.RFC3339Nano))
		}
	}
	t.Logf("%d tenders of %d lots re-published while their bid was paid, on two replicas: %d paid gaps reopened; %d CIG gaps stored",
		tenders, lots, reopened, len(recs)-reopened)
}
