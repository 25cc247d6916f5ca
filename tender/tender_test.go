package tender

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/promemoria/promemoria/contribution"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
)

const tenderID = "2021/42"

var (
	t0       = time.Date(2021, 5, 4, 10, 0, 0, 0, time.UTC)
	deadline = time.Date(2021, 5, 20, 12, 0, 0, 0, time.UTC)

	rupA = events.Person{Name: "Maria Rossi", Email: "m.rossi@comune.example.it"}
	rupB = events.Person{Name: "Luca Bianchi", Email: "l.bianchi@comune.example.it"}
	opA  = events.Operator{FiscalCode: "IT01234567890", Name: "Edil Srl", Email: "edil@pec.example.it"}
	opB  = events.Operator{FiscalCode: "IT09876543210", Name: "Strade Spa", Email: "strade@pec.example.it"}

	authority = events.Authority{FiscalCode: "80000000000", Name: "Comune"}

	services = Services{Contribution: "payments", Owed: owed}
)

func at(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

// owed is a fake contribution table that depends on both its arguments: the
// hour of the time tells the publication (at(0): 10h) from an admission.
func owed(base int64, at time.Time) contribution.Amount {
	return contribution.Amount{Cents: base/10_000 + int64(at.Hour()), Table: fmt.Sprintf("fake-%02d", at.Hour()), Known: true}
}

// validCIG stands in for the check-digit validation.
func validCIG(c string) bool {
	return c == "B00012EADB" || c == "918052266A" || c == "Z3B3885F48"
}

type step struct {
	name  string
	apply func(*Tender)
}

func (s step) String() string { return s.name }

func ev(id string, t time.Time) *events.Event {
	return &events.Event{Envelope: events.Envelope{Source: "test", ID: id, Time: t}}
}

type pubOpt func(*events.TenderPublished)

func title(s string) pubOpt      { return func(p *events.TenderPublished) { p.Title = s } }
func rup(r events.Person) pubOpt { return func(p *events.TenderPublished) { p.RUP = r } }
func offerDeadline(d time.Time) pubOpt {
	return func(p *events.TenderPublished) { p.OfferDeadline = d }
}
func lots(ls ...events.Lot) pubOpt   { return func(p *events.TenderPublished) { p.Lots = ls } }
func publishedAt(d time.Time) pubOpt { return func(p *events.TenderPublished) { p.PublishedAt = d } }
func lot(id, cig string, euros int64) events.Lot {
	return events.Lot{LotID: id, CIG: cig, BaseAmountCents: euros * 100}
}

func pub(id string, when time.Time, opts ...pubOpt) step {
	p := &events.TenderPublished{
		TenderID: tenderID, Title: "Manutenzione strade", Authority: authority,
		RUP: rupA, PublishedAt: when, OfferDeadline: deadline, Lots: []events.Lot{lot("1", "", 200_000)},
	}
	for _, o := range opts {
		o(p)
	}
	return step{"pub:" + id, func(t *Tender) { t.Published(ev(id, when), p, "pcp", validCIG) }}
}

func assign(id, lotID, code string, when time.Time) step {
	return step{"assign:" + id, func(t *Tender) {
		t.CIGAssigned(ev(id, when), &events.CIGAssigned{TenderID: tenderID, LotID: lotID, CIG: code})
	}}
}

func cancel(id, reason string, when time.Time) step {
	return step{"cancel:" + id, func(t *Tender) {
		t.Cancel(ev(id, when), &events.TenderCancelled{TenderID: tenderID, Reason: reason})
	}}
}

func admit(id, lotID string, op events.Operator, by, when time.Time) step {
	return step{"admit:" + id, func(t *Tender) {
		t.Admitted(ev(id, when), &events.AdmittedWithReserve{TenderID: tenderID, LotID: lotID, Operator: op, RegulariseBy: by})
	}}
}

func paid(id, lotID, fc, receipt string, when time.Time) step {
	return step{"paid:" + id, func(t *Tender) {
		t.Paid(ev(id, when), &events.ContributionPaid{TenderID: tenderID, LotID: lotID, OperatorFiscalCode: fc, Receipt: receipt})
	}}
}

func permutations[T any](xs []T) [][]T {
	if len(xs) <= 1 {
		return [][]T{append([]T(nil), xs...)}
	}
	var out [][]T
	for i := range xs {
		rest := append(append([]T(nil), xs[:i]...), xs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]T{xs[i]}, p...))
		}
	}
	return out
}

func run(steps []step) []gap.Gap {
	t := &Tender{TenderID: tenderID}
	for _, s := range steps {
		s.apply(t)
	}
	return t.Gaps(services)
}

// checkAllOrders applies steps in every order and requires the same Gaps,
// equal to want.
func checkAllOrders(t *testing.T, steps []step, want []gap.Gap) {
	t.Helper()
	for _, p := range permutations(steps) {
		got := run(p)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("order %v:\n got %s\nwant %s", p, dump(got), dump(want))
		}
	}
}

func dump(gs []gap.Gap) string {
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "\n  %+v", g)
		if g.Operator != nil {
			fmt.Fprintf(&b, " operator=%+v", *g.Operator)
		}
		if g.Resolution != nil {
			fmt.Fprintf(&b, " resolution=%+v", *g.Resolution)
		}
	}
	return b.String()
}

// cigGap is the CIG gap of a lot of the tender published at at(0).
func cigGap(lotID, service string) gap.Gap {
	return gap.Gap{
		Key:  gap.Key(service, gap.Identity{Kind: events.KindCIG, TenderID: tenderID, LotID: lotID}),
		Kind: events.KindCIG, Service: service, TenderID: tenderID, Title: "Manutenzione strade",
		Authority: authority, PublishedAt: at(0), LotID: lotID,
		RUP: rupA, Deadline: deadline, OpenedAt: at(0), Open: true,
	}
}

// contributionGap is the gap of op's bid on a lot of base euros whose CIG
// is cig, admitted at admitted, of the tender published at published: the
// amount is the one in force at the publication, not at the admission.
func contributionGap(lotID string, op events.Operator, by, admitted, published time.Time, base int64, cig string) gap.Gap {
	a := owed(base*100, published)
	return gap.Gap{
		Key:  gap.Key("payments", gap.Identity{Kind: events.KindContribution, TenderID: tenderID, LotID: lotID, OperatorFiscalCode: op.FiscalCode}),
		Kind: events.KindContribution, Service: "payments", TenderID: tenderID, Title: "Manutenzione strade",
		Authority: authority, PublishedAt: published, LotID: lotID, CIG: cig,
		Operator: &op, RUP: rupA, Deadline: by, OpenedAt: admitted, Open: true,
		ContributionCents: a.Cents, ContributionKnown: a.Known, ContributionTable: a.Table,
	}
}

// withCIG returns the CIG gap g with the lot's CIG known.
func withCIG(g gap.Gap, cig string) gap.Gap {
	g.CIG = cig
	return g
}

// publishedAtTime returns g as derived from a tender published at p; a
// CIG gap opens at the publication.
func publishedAtTime(g gap.Gap, p time.Time) gap.Gap {
	g.PublishedAt = p
	if g.Kind == events.KindCIG {
		g.OpenedAt = p
	}
	return g
}

func closed(g gap.Gap, r events.Resolution) gap.Gap {
	g.Open, g.Resolution = false, &r
	return g
}

func TestMergeOrderIndependent(t *testing.T) {
	regBy := at(24 * 7)
	cancelled := events.Resolution{By: events.TypeTenderCancelled, At: at(5), Reason: "annullata in autotutela", EventSource: "test", EventID: "c1"}
	tests := []struct {
		name  string
		steps []step
		want  []gap.Gap
	}{
		{
			name:  "published without CIG, then cig_assigned",
			steps: []step{pub("p1", at(0)), assign("a1", "1", "B00012EADB", at(3))},
			want: []gap.Gap{closed(withCIG(cigGap("1", "pcp"), "B00012EADB"), events.Resolution{
				By: events.TypeCIGAssigned, At: at(3), CIG: "B00012EADB", EventSource: "test", EventID: "a1"})},
		},
		{
			name:  "published without CIG, still open",
			steps: []step{pub("p1", at(0))},
			want:  []gap.Gap{cigGap("1", "pcp")},
		},
		{
			name:  "admitted, then paid",
			steps: []step{pub("p1", at(0), lots(lot("1", "918052266A", 200_000))), admit("b1", "1", opA, regBy, at(2)), paid("y1", "1", opA.FiscalCode, "IUV-1", at(4))},
			want: []gap.Gap{closed(contributionGap("1", opA, regBy, at(2), at(0), 200_000, "918052266A"), events.Resolution{
				By: events.TypeContributionPaid, At: at(4), Receipt: "IUV-1", EventSource: "test", EventID: "y1"})},
		},
		{
			name:  "admitted, unpaid",
			steps: []step{pub("p1", at(0), lots(lot("1", "918052266A", 300_000))), admit("b1", "1", opA, regBy, at(2))},
			want:  []gap.Gap{contributionGap("1", opA, regBy, at(2), at(0), 300_000, "918052266A")},
		},
		{
			name:  "cancelled after published and admitted",
			steps: []step{pub("p1", at(0)), admit("b1", "1", opA, regBy, at(2)), cancel("c1", "annullata in autotutela", at(5))},
			want: []gap.Gap{
				closed(cigGap("1", "pcp"), cancelled),
				closed(contributionGap("1", opA, regBy, at(2), at(0), 200_000, ""), cancelled),
			},
		},
		{
			name:  "cancelled before published and admitted",
			steps: []step{pub("p1", at(6)), admit("b1", "1", opA, regBy, at(7)), cancel("c1", "annullata in autotutela", at(5))},
			want: func() []gap.Gap {
				c := publishedAtTime(cigGap("1", "pcp"), at(6))
				return []gap.Gap{closed(c, cancelled), closed(contributionGap("1", opA, regBy, at(7), at(6), 200_000, ""), cancelled)}
			}(),
		},
		{
			name:  "cancelled twice: the earliest wins",
			steps: []step{pub("p1", at(0)), cancel("c1", "annullata in autotutela", at(5)), cancel("c2", "revocata", at(9))},
			want:  []gap.Gap{closed(cigGap("1", "pcp"), cancelled)},
		},
		{
			name:  "republished with newer time updates RUP and deadline",
			steps: []step{pub("p1", at(0)), pub("p2", at(10), rup(rupB), offerDeadline(deadline.Add(48*time.Hour)), title("Manutenzione strade (rettifica)"), publishedAt(at(0)))},
			want: func() []gap.Gap {
				g := cigGap("1", "pcp")
				g.RUP, g.Deadline, g.Title = rupB, deadline.Add(48*time.Hour), "Manutenzione strade (rettifica)"
				return []gap.Gap{g}
			}(),
		},
		{
			name:  "republished with the CIG closes the gap",
			steps: []step{pub("p1", at(0)), pub("p2", at(10), lots(lot("1", "Z3B3885F48", 200_000)), publishedAt(at(0)))},
			want: []gap.Gap{closed(withCIG(cigGap("1", "pcp"), "Z3B3885F48"), events.Resolution{
				By: events.TypeCIGAssigned, At: at(10), CIG: "Z3B3885F48", EventSource: "test", EventID: "p2"})},
		},
		{
			name:  "two cig_assigned: the earliest wins",
			steps: []step{pub("p1", at(0)), assign("a2", "1", "918052266A", at(8)), assign("a1", "1", "B00012EADB", at(3))},
			want: []gap.Gap{closed(withCIG(cigGap("1", "pcp"), "B00012EADB"), events.Resolution{
				By: events.TypeCIGAssigned, At: at(3), CIG: "B00012EADB", EventSource: "test", EventID: "a1"})},
		},
		{
			name:  "paid twice: the earliest wins",
			steps: []step{pub("p1", at(0), lots(lot("1", "918052266A", 200_000))), admit("b1", "1", opA, regBy, at(2)), paid("y2", "1", opA.FiscalCode, "FVOE-00099", at(9)), paid("y1", "1", opA.FiscalCode, "IUV-1", at(4))},
			want: []gap.Gap{closed(contributionGap("1", opA, regBy, at(2), at(0), 200_000, "918052266A"), events.Resolution{
				By: events.TypeContributionPaid, At: at(4), Receipt: "IUV-1", EventSource: "test", EventID: "y1"})},
		},
		{
			name: "the May 2021 story",
			steps: []step{
				pub("p1", at(0), lots(events.Lot{LotID: "2", BaseAmountCents: 600_000_00}, events.Lot{LotID: "1", CIGService: "smartcig", BaseAmountCents: 35_000_00})),
				admit("b1", "2", opB, regBy, at(1)),
				admit("b2", "2", opA, regBy, at(2)),
				paid("y1", "2", opB.FiscalCode, "IUV-9", at(30)),
				assign("a1", "1", "Z3B3885F48", at(50)),
			},
			want: []gap.Gap{
				closed(withCIG(cigGap("1", "smartcig"), "Z3B3885F48"), events.Resolution{By: events.TypeCIGAssigned, At: at(50), CIG: "Z3B3885F48", EventSource: "test", EventID: "a1"}),
				cigGap("2", "pcp"),
				contributionGap("2", opA, regBy, at(2), at(0), 600_000, ""),
				closed(contributionGap("2", opB, regBy, at(1), at(0), 600_000, ""), events.Resolution{By: events.TypeContributionPaid, At: at(30), Receipt: "IUV-9", EventSource: "test", EventID: "y1"}),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAllOrders(t, tt.steps, tt.want)
		})
	}
}

// TestMergeOrderIndependentBugs holds order-dependence the code has today.
func TestMergeOrderIndependentBugs(t *testing.T) {
	regBy1, regBy2 := at(24*7), at(24*9)
	tests := []struct {
		name  string
		bug   string
		steps []step
		want  []gap.Gap
	}{
		{
			name: "admitted twice",
			bug: "Tender.Admitted: a re-admission (second bid.admitted_with_reserve for the same bid) with an older event time " +
				"arriving after a newer one does not lower AdmittedAt (the inner `at.Before(b.AdmittedAt)` is unreachable inside " +
				"`!at.Before(b.AdmittedAt)`), so the gap's OpenedAt depends on arrival order",
			steps: []step{pub("p1", at(0), lots(lot("1", "918052266A", 200_000))), admit("b1", "1", opA, regBy1, at(2)), admit("b2", "1", opA, regBy2, at(30))},
			want:  []gap.Gap{contributionGap("1", opA, regBy2, at(2), at(0), 200_000, "918052266A")},
		},
		{
			name: "republished with another base amount",
			bug: "Tender.Published overwrites Lot.BaseAmountCents from every tender.published, even one older than PublishedRef, " +
				"so the contribution owed follows the last publication to arrive, not the newest",
			steps: []step{pub("p1", at(0), lots(lot("1", "918052266A", 200_000))), pub("p2", at(10), lots(lot("1", "918052266A", 600_000))), admit("b1", "1", opA, regBy1, at(20))},
			want:  []gap.Gap{contributionGap("1", opA, regBy1, at(20), at(10), 600_000, "918052266A")},
		},
		{
			name: "cig_assigned timed before the publication without CIG",
			bug: "Tender.Published/CIGAssigned: when the CIG's event time precedes a publication without CIG, the lot is marked " +
				"MissingAtPublication only if the publication arrives first, so Gaps returns a closed CIG gap in one order and none in the other",
			steps: []step{pub("p1", at(5)), assign("a1", "1", "B00012EADB", at(1))},
			// Fixed: in both orders a closed gap, which is never stored.
			want: []gap.Gap{publishedAtTime(closed(withCIG(cigGap("1", "pcp"), "B00012EADB"), events.Resolution{
				By: events.TypeCIGAssigned, At: at(1), CIG: "B00012EADB", EventSource: "test", EventID: "a1"}), at(5))},
		},
		{
			name: "publication with CIG timed before a republication without it",
			bug: "Tender.Published: MissingAtPublication is sticky; a publication without CIG (newer) merged before the older " +
				"one that carried the CIG leaves a closed CIG gap that the other order does not produce",
			steps: []step{pub("p1", at(0), lots(lot("1", "918052266A", 200_000))), pub("p2", at(5))},
			// Fixed: in both orders a closed gap, which is never stored.
			want: []gap.Gap{publishedAtTime(closed(withCIG(cigGap("1", "pcp"), "918052266A"), events.Resolution{
				By: events.TypeCIGAssigned, At: at(0), CIG: "918052266A", EventSource: "test", EventID: "p1"}), at(5))},
		},
		{
			name: "CIG in a republication and a later cig_assigned with another CIG",
			bug: "Tender.Published keeps an existing CIG whatever its time (`if l.CIG == \"\"`) while CIGAssigned keeps the " +
				"earliest, so the resolution (CIG, time, event id) depends on arrival order when a republication carries a CIG " +
				"and a later cig_assigned another",
			steps: []step{pub("p0", at(0)), pub("p1", at(1), lots(lot("1", "918052266A", 200_000)), publishedAt(at(0))), assign("a1", "1", "B00012EADB", at(2))},
			want: []gap.Gap{closed(withCIG(cigGap("1", "pcp"), "918052266A"), events.Resolution{
				By: events.TypeCIGAssigned, At: at(1), CIG: "918052266A", EventSource: "test", EventID: "p1"})},
		},
		{
			name: "two publications with the same time",
			bug: "ties on event time are broken by arrival order: Published (>=) keeps the last, Cancel/CIGAssigned/Paid (<) keep " +
				"the first, so two distinct events with equal time give order-dependent title, RUP, deadline, reason, CIG or receipt",
			steps: []step{pub("p1", at(0), title("A")), pub("p2", at(0), title("B"))},
			want: func() []gap.Gap {
				g := cigGap("1", "pcp")
				g.Title = "B" // any deterministic choice, e.g. by (source, id)
				return []gap.Gap{g}
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAllOrders(t, tt.steps, tt.want)
		})
	}
}

func TestRepublication(t *testing.T) {
	older := pub("p1", at(0), title("old"), rup(rupA), offerDeadline(deadline))
	newer := pub("p2", at(10), title("new"), rup(rupB), offerDeadline(deadline.Add(72*time.Hour)))
	tests := []struct {
		name  string
		steps []step
	}{
		{"newer arrives last", []step{older, newer}},
		{"newer arrives first", []step{newer, older}},
		{"newer twice", []step{newer, older, newer}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := &Tender{TenderID: tenderID}
			for _, s := range tt.steps {
				s.apply(tn)
			}
			if tn.Title != "new" || tn.RUP != rupB || !tn.OfferDeadline.Equal(deadline.Add(72*time.Hour)) {
				t.Errorf("title %q rup %v deadline %v; want the newer publication's", tn.Title, tn.RUP, tn.OfferDeadline)
			}
			if tn.PublishedRef.ID != "p2" || !tn.PublishedRef.Time.Equal(at(10)) {
				t.Errorf("PublishedRef = %+v, want p2", tn.PublishedRef)
			}
			gs := tn.Gaps(services)
			if len(gs) != 1 || gs[0].RUP != rupB || !gs[0].Deadline.Equal(deadline.Add(72*time.Hour)) || gs[0].Title != "new" {
				t.Errorf("Gaps = %s", dump(gs))
			}
		})
	}
}

func TestCIGServiceFixedByFirstPublication(t *testing.T) {
	smart := pub("p1", at(0), lots(events.Lot{LotID: "1", CIGService: "smartcig"}))
	pcp := pub("p2", at(10), lots(events.Lot{LotID: "1", CIGService: "simog"}))
	dflt := pub("p3", at(20), lots(events.Lot{LotID: "1"}))
	tests := []struct {
		name  string
		steps []step
		want  string
	}{
		{"explicit", []step{smart}, "smartcig"},
		{"default", []step{dflt}, "pcp"},
		{"first explicit, later another", []step{smart, pcp, dflt}, "smartcig"},
		{"first default, later explicit", []step{dflt, smart}, "pcp"},
		{"first by arrival, not by time", []step{pcp, smart}, "simog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs := run(tt.steps)
			if len(gs) != 1 {
				t.Fatalf("Gaps = %s", dump(gs))
			}
			if gs[0].Service != tt.want {
				t.Errorf("Service = %q, want %q", gs[0].Service, tt.want)
			}
			if want := "gap." + tt.want + ".cig.2021=2F42.1"; gs[0].Key != want {
				t.Errorf("Key = %q, want %q", gs[0].Key, want)
			}
		})
	}
}

func TestInvalidCIGAtPublication(t *testing.T) {
	tests := []struct {
		name     string
		steps    []step
		wantGaps int
		wantOpen bool
		wantCIG  string
	}{
		{"invalid CIG leaves the gap open", []step{pub("p1", at(0), lots(lot("1", "B00012EADC", 200_000)))}, 1, true, ""},
		{"empty CIG leaves the gap open", []step{pub("p1", at(0), lots(lot("1", "", 200_000)))}, 1, true, ""},
		{"valid CIG: no gap", []step{pub("p1", at(0), lots(lot("1", "B00012EADB", 200_000)))}, 0, false, "B00012EADB"},
		{"invalid, then assigned", []step{pub("p1", at(0), lots(lot("1", "B00012EADC", 200_000))), assign("a1", "1", "B00012EADB", at(2))}, 1, false, "B00012EADB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := &Tender{TenderID: tenderID}
			for _, s := range tt.steps {
				s.apply(tn)
			}
			if l := tn.Lot("1", false); l == nil || l.CIG != tt.wantCIG {
				t.Fatalf("lot = %+v, want CIG %q", l, tt.wantCIG)
			}
			gs := tn.Gaps(services)
			if len(gs) != tt.wantGaps {
				t.Fatalf("Gaps = %s, want %d", dump(gs), tt.wantGaps)
			}
			if tt.wantGaps == 1 && gs[0].Open != tt.wantOpen {
				t.Errorf("Open = %v, want %v", gs[0].Open, tt.wantOpen)
			}
		})
	}
}

func TestGapsKeysAndFields(t *testing.T) {
	tn := &Tender{TenderID: tenderID}
	pub("p1", at(0), lots(lot("1", "", 150_000), events.Lot{LotID: "lotto 2", CIGService: "smartcig", BaseAmountCents: 10})).apply(tn)
	admit("b1", "1", opA, at(100), at(3)).apply(tn)
	gs := tn.Gaps(services)
	wantKeys := []string{
		"gap.pcp.cig.2021=2F42.1",
		"gap.smartcig.cig.2021=2F42.lotto=202",
		"gap.payments.contribution.2021=2F42.1.IT01234567890",
	}
	if len(gs) != len(wantKeys) {
		t.Fatalf("Gaps = %s", dump(gs))
	}
	for i, g := range gs {
		t.Run(wantKeys[i], func(t *testing.T) {
			if g.Key != wantKeys[i] {
				t.Errorf("Key = %q, want %q", g.Key, wantKeys[i])
			}
			if g.Key != gap.Key(g.Service, g.Identity()) {
				t.Errorf("Key %q != gap.Key(%q, %+v)", g.Key, g.Service, g.Identity())
			}
			if !g.Open || g.Resolution != nil || g.Sequence != 0 || !g.WakeAt.IsZero() {
				t.Errorf("a fresh gap carries progress: %+v", g)
			}
		})
	}
	c := gs[2]
	if c.Operator == nil || *c.Operator != opA || c.Recipient().Email != opA.Email || !c.Deadline.Equal(at(100)) || !c.OpenedAt.Equal(at(3)) {
		t.Errorf("contribution gap = %s", dump(gs[2:]))
	}
	// The operator is a copy: changing it does not change the tender.
	c.Operator.Name = "changed"
	if tn.Bids[0].Operator.Name != opA.Name {
		t.Error("Gaps shares the operator with the tender record")
	}
}

func TestContributionAmount(t *testing.T) {
	type call struct {
		base int64
		at   time.Time
	}
	fake := contribution.Amount{Cents: 3300, Table: "fake", Known: true}
	tests := []struct {
		name      string
		steps     []step
		withOwed  bool
		want      contribution.Amount
		wantCalls []call
	}{
		{
			name:      "uses Owed with the lot's base and the publication time, not the admission's",
			steps:     []step{pub("p1", at(0), lots(lot("1", "918052266A", 300_000))), admit("b1", "1", opA, time.Time{}, at(30))},
			withOwed:  true,
			want:      fake,
			wantCalls: []call{{300_000_00, at(0)}},
		},
		{
			name:      "admitted before the publication: still the publication time",
			steps:     []step{admit("b1", "1", opA, time.Time{}, at(-30)), pub("p1", at(0), lots(lot("1", "918052266A", 300_000)))},
			withOwed:  true,
			want:      fake,
			wantCalls: []call{{300_000_00, at(0)}},
		},
		{
			name: "a newer republication keeps the published_at it carries",
			steps: []step{
				pub("p1", at(0), lots(lot("1", "918052266A", 300_000))),
				pub("p2", at(20), lots(lot("1", "918052266A", 300_000)), publishedAt(at(0))),
				admit("b1", "1", opA, time.Time{}, at(30)),
			},
			withOwed:  true,
			want:      fake,
			wantCalls: []call{{300_000_00, at(0)}},
		},
		{
			name:  "no Owed: not known",
			steps: []step{pub("p1", at(0), lots(lot("1", "918052266A", 300_000))), admit("b1", "1", opA, time.Time{}, at(2))},
		},
		{
			name:     "lot unknown: not known, Owed not asked",
			steps:    []step{admit("b1", "9", opA, time.Time{}, at(2))},
			withOwed: true,
		},
		{
			name:     "lot known only from cig_assigned: not known, Owed not asked",
			steps:    []step{assign("a1", "1", "B00012EADB", at(1)), admit("b1", "1", opA, time.Time{}, at(2))},
			withOwed: true,
		},
		{
			name:     "published without published_at: not known, Owed not asked",
			steps:    []step{pub("p1", at(0), lots(lot("1", "918052266A", 300_000)), publishedAt(time.Time{})), admit("b1", "1", opA, time.Time{}, at(2))},
			withOwed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []call
			s := Services{Contribution: "payments"}
			if tt.withOwed {
				s.Owed = func(base int64, when time.Time) contribution.Amount {
					calls = append(calls, call{base, when})
					if base == 300_000_00 && when.Equal(at(0)) {
						return fake
					}
					return contribution.Amount{Cents: -1, Table: "wrong", Known: true}
				}
			}
			tn := &Tender{TenderID: tenderID}
			for _, st := range tt.steps {
				st.apply(tn)
			}
			c := contributionOf(t, tn.Gaps(s))
			got := contribution.Amount{Cents: c.ContributionCents, Table: c.ContributionTable, Known: c.ContributionKnown, Exempt: c.Exempt}
			if got != tt.want {
				t.Errorf("amount = %+v, want %+v", got, tt.want)
			}
			if !c.Open || c.Resolution != nil {
				t.Errorf("gap closed: %s", dump([]gap.Gap{*c}))
			}
			if !reflect.DeepEqual(calls, tt.wantCalls) {
				t.Errorf("Owed calls = %v, want %v", calls, tt.wantCalls)
			}
		})
	}
}

// contributionOf returns the only contribution gap in gs.
func contributionOf(t *testing.T, gs []gap.Gap) *gap.Gap {
	t.Helper()
	var c *gap.Gap
	for i := range gs {
		if gs[i].Kind != events.KindContribution {
			continue
		}
		if c != nil {
			t.Fatalf("two contribution gaps in %s", dump(gs))
		}
		c = &gs[i]
	}
	if c == nil {
		t.Fatalf("no contribution gap in %s", dump(gs))
	}
	return c
}

func TestGapsSkipsWhatIsNotAGap(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"cig_assigned for an unpublished lot", []step{assign("a1", "1", "B00012EADB", at(1))}},
		{"paid but never admitted", []step{pub("p1", at(0), lots(lot("1", "B00012EADB", 200_000))), paid("y1", "1", opA.FiscalCode, "IUV", at(2))}},
		{"cancelled only", []step{cancel("c1", "revocata", at(1))}},
		{"lot not in the publication", []step{pub("p1", at(0), lots(lot("1", "B00012EADB", 200_000))), assign("a1", "2", "918052266A", at(1))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if gs := run(tt.steps); len(gs) != 0 {
				t.Errorf("Gaps = %s, want none", dump(gs))
			}
		})
	}
}
