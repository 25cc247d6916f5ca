package tender

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/promemoria/promemoria/contribution"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
)

// realServices looks amounts up in the documented default schedules.
func realServices(t *testing.T) Services {
	t.Helper()
	tbl, err := contribution.NewTable(contribution.DefaultSchedules())
	if err != nil {
		t.Fatal(err)
	}
	return Services{Contribution: "payments", Owed: tbl.Owed}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// cents writes euros and cents as cents: cents(149_999, 99).
func cents(euros, c int64) int64 { return euros*100 + c }

func TestContributionByPublicationDate(t *testing.T) {
	may2021 := utc("2021-05-04T10:00:00Z")
	lastMarch := utc("2023-03-31T21:59:59Z")  // 23:59:59 on 31 March in Rome
	firstApril := utc("2023-03-31T22:00:00Z") // midnight of 1 April in Rome
	lastUncovered := utc("2020-12-31T22:59:59Z")
	firstCovered := utc("2020-12-31T23:00:00Z") // midnight of 1 January 2021 in Rome
	exempt := func(when time.Time) *events.Resolution {
		return &events.Resolution{By: events.TypeTenderPublished, At: when, Reason: ReasonExempt, EventSource: "test", EventID: "p1"}
	}
	cancelled := &events.Resolution{By: events.TypeTenderCancelled, At: may2021.Add(time.Hour), Reason: "revocata", EventSource: "test", EventID: "c1"}
	tests := []struct {
		name      string
		published time.Time
		base      int64
		admitted  time.Time // zero: an hour after the publication
		cancelled bool
		want      contribution.Amount
		wantRes   *events.Resolution // nil: open
	}{
		{name: "450,000 € in May 2021: 2021 schedule", published: may2021, base: cents(450_000, 0),
			want: contribution.Amount{Cents: 3500, Table: "anac-2021", Known: true}},
		{name: "450,000 € in May 2021, admitted in 2024: still 2021", published: may2021, base: cents(450_000, 0), admitted: utc("2024-02-01T10:00:00Z"),
			want: contribution.Amount{Cents: 3500, Table: "anac-2021", Known: true}},
		{name: "last second of 31 March 2023 in Rome", published: lastMarch, base: cents(450_000, 0),
			want: contribution.Amount{Cents: 3500, Table: "anac-2021", Known: true}},
		{name: "same, admitted in April", published: lastMarch, base: cents(450_000, 0), admitted: utc("2023-04-15T10:00:00Z"),
			want: contribution.Amount{Cents: 3500, Table: "anac-2021", Known: true}},
		{name: "midnight of 1 April 2023 in Rome", published: firstApril, base: cents(450_000, 0),
			want: contribution.Amount{Cents: 3300, Table: "anac-2023", Known: true}},
		{name: "149,999.99 € in 2021: exempt", published: may2021, base: cents(149_999, 99),
			want:    contribution.Amount{Table: "anac-2021", Known: true, Exempt: true},
			wantRes: exempt(may2021)},
		{name: "150,000 € in 2021: 20 €", published: may2021, base: cents(150_000, 0),
			want: contribution.Amount{Cents: 2000, Table: "anac-2021", Known: true}},
		{name: "149,999.99 € in 2023: exempt", published: firstApril, base: cents(149_999, 99),
			want:    contribution.Amount{Table: "anac-2023", Known: true, Exempt: true},
			wantRes: exempt(firstApril)},
		{name: "150,000 € in 2023: 18 €", published: firstApril, base: cents(150_000, 0),
			want: contribution.Amount{Cents: 1800, Table: "anac-2023", Known: true}},
		{name: "no schedule covers the date: unknown, not 0 €, still open", published: lastUncovered, base: cents(450_000, 0),
			want: contribution.Amount{}},
		{name: "no schedule covers the date, small lot: unknown, not exempt", published: lastUncovered, base: cents(1_000, 0),
			want: contribution.Amount{}},
		{name: "first day covered", published: firstCovered, base: cents(450_000, 0),
			want: contribution.Amount{Cents: 3500, Table: "anac-2021", Known: true}},
		{name: "exempt and cancelled: the cancellation resolves it", published: may2021, base: cents(149_999, 99), cancelled: true,
			want:    contribution.Amount{Table: "anac-2021", Known: true, Exempt: true},
			wantRes: cancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admitted := tt.admitted
			if admitted.IsZero() {
				admitted = tt.published.Add(time.Hour)
			}
			steps := []step{
				pub("p1", tt.published, lots(lot("1", "918052266A", 0)), func(p *events.TenderPublished) { p.Lots[0].BaseAmountCents = tt.base }),
				admit("b1", "1", opA, admitted.Add(10*24*time.Hour), admitted),
			}
			if tt.cancelled {
				steps = append(steps, cancel("c1", "revocata", cancelled.At))
			}
			for _, order := range permutations(steps) {
				tn := &Tender{TenderID: tenderID}
				for _, s := range order {
					s.apply(tn)
				}
				c := contributionOf(t, tn.Gaps(realServices(t)))
				got := contribution.Amount{Cents: c.ContributionCents, Table: c.ContributionTable, Known: c.ContributionKnown, Exempt: c.Exempt}
				if got != tt.want {
					t.Errorf("order %v: amount = %+v, want %+v", order, got, tt.want)
				}
				if c.Open != (tt.wantRes == nil) || !reflect.DeepEqual(c.Resolution, tt.wantRes) {
					t.Errorf("order %v: open %v resolution %+v, want resolution %+v", order, c.Open, c.Resolution, tt.wantRes)
				}
				if !c.PublishedAt.Equal(tt.published) || c.CIG != "918052266A" || c.Authority != authority {
					t.Errorf("order %v: published_at %v CIG %q authority %+v", order, c.PublishedAt, c.CIG, c.Authority)
				}
			}
		})
	}
}

func TestBidBeforeItsTenderTurnsOutExempt(t *testing.T) {
	published := utc("2021-05-04T10:00:00Z")
	admitted := published.Add(-2 * time.Hour) // the bid's event came first
	tests := []struct {
		name       string
		progress   func(g *gap.Gap) // what was sent about the stored gap
		wantExempt bool
	}{
		{name: "nothing sent: exempt", progress: func(*gap.Gap) {}, wantExempt: true},
		{name: "escalated to the RUP: closed, not exempt", progress: func(g *gap.Gap) { g.Escalated, g.EscalatedAt = true, admitted }, wantExempt: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svcs := realServices(t)
			tn := &Tender{TenderID: tenderID}
			admit("b1", "1", opA, published.Add(10*24*time.Hour), admitted).apply(tn)
			first := contributionOf(t, tn.Gaps(svcs))
			if !first.Open || first.Exempt || first.ContributionKnown || first.ContributionCents != 0 || first.ContributionTable != "" ||
				first.CIG != "" || !first.NeedsCIG() || !first.PublishedAt.IsZero() {
				t.Fatalf("before the tender: %s; want open, amount unknown, no CIG", dump([]gap.Gap{*first}))
			}
			stored := *first
			stored.TenderRevision = 1
			tt.progress(&stored)

			pub("p1", published, lots(events.Lot{LotID: "1", BaseAmountCents: cents(149_999, 99)})).apply(tn)
			spec := contributionOf(t, tn.Gaps(svcs))
			wantRes := &events.Resolution{By: events.TypeTenderPublished, At: published, Reason: ReasonExempt, EventSource: "test", EventID: "p1"}
			if spec.Open || !spec.Exempt || !reflect.DeepEqual(spec.Resolution, wantRes) {
				t.Fatalf("derivation after the tender: %s; want closed and exempt", dump([]gap.Gap{*spec}))
			}
			if spec.Key != stored.Key {
				t.Fatalf("key changed: %q then %q", stored.Key, spec.Key)
			}

			stored.Merge(spec, 2)
			if stored.Open || stored.Exempt != tt.wantExempt || !reflect.DeepEqual(stored.Resolution, wantRes) {
				t.Errorf("merged: open %v exempt %v resolution %+v; want closed, exempt %v, %+v", stored.Open, stored.Exempt, stored.Resolution, tt.wantExempt, wantRes)
			}
			if !stored.ContributionKnown || stored.ContributionTable != "anac-2021" || stored.ContributionCents != 0 ||
				!stored.PublishedAt.Equal(published) || stored.Authority != authority || stored.TenderRevision != 2 {
				t.Errorf("merged descriptive fields: %s", dump([]gap.Gap{stored}))
			}
		})
	}
}

func TestContributionGapCarriesTheLotsCIG(t *testing.T) {
	tests := []struct {
		name    string
		steps   []step
		wantCIG string
	}{
		{"published without CIG", []step{pub("p1", at(0)), admit("b1", "1", opA, at(100), at(2))}, ""},
		{"then cig_assigned", []step{pub("p1", at(0)), admit("b1", "1", opA, at(100), at(2)), assign("a1", "1", "B00012EADB", at(3))}, "B00012EADB"},
		{"cig_assigned before the admission", []step{pub("p1", at(0)), assign("a1", "1", "B00012EADB", at(1)), admit("b1", "1", opA, at(100), at(2))}, "B00012EADB"},
		{"published with a valid CIG", []step{pub("p1", at(0), lots(lot("1", "918052266A", 200_000))), admit("b1", "1", opA, at(100), at(2))}, "918052266A"},
		{"published with an invalid CIG", []step{pub("p1", at(0), lots(lot("1", "918052266B", 200_000))), admit("b1", "1", opA, at(100), at(2))}, ""},
		{"CIG of another lot", []step{pub("p1", at(0), lots(lot("1", "", 200_000), lot("2", "", 200_000))), admit("b1", "1", opA, at(100), at(2)), assign("a1", "2", "B00012EADB", at(3))}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := &Tender{TenderID: tenderID}
			for _, s := range tt.steps {
				s.apply(tn)
			}
			c := contributionOf(t, tn.Gaps(realServices(t)))
			if c.CIG != tt.wantCIG || c.NeedsCIG() != (tt.wantCIG == "") {
				t.Errorf("CIG %q NeedsCIG %v, want %q", c.CIG, c.NeedsCIG(), tt.wantCIG)
			}
			if !c.Open || c.ContributionCents != 2000 {
				t.Errorf("the CIG changes nothing else: %s", dump([]gap.Gap{*c}))
			}
		})
	}
	t.Run("merged into the stored gap", func(t *testing.T) {
		tn := &Tender{TenderID: tenderID}
		pub("p1", at(0)).apply(tn)
		admit("b1", "1", opA, at(100), at(2)).apply(tn)
		stored := *contributionOf(t, tn.Gaps(realServices(t)))
		stored.TenderRevision = 2
		assign("a1", "1", "B00012EADB", at(3)).apply(tn)
		stored.Merge(contributionOf(t, tn.Gaps(realServices(t))), 3)
		if stored.CIG != "B00012EADB" || stored.NeedsCIG() || !stored.Open {
			t.Errorf("stored after cig_assigned: CIG %q NeedsCIG %v open %v", stored.CIG, stored.NeedsCIG(), stored.Open)
		}
	})
}

func TestWarnings(t *testing.T) {
	before2024 := utc("2023-12-31T22:59:59Z") // 23:59:59 on 31 December in Rome
	from2024 := utc("2023-12-31T23:00:00Z")   // midnight of 1 January 2024 in Rome
	lot := func(id, service string, c int64) events.Lot {
		return events.Lot{LotID: id, CIGService: service, BaseAmountCents: c}
	}
	tests := []struct {
		name      string
		published time.Time
		dflt      string
		lots      []events.Lot
		want      []string // substrings, one per warning, in order
	}{
		{"smartcig under 40,000 € in 2023", before2024, "pcp", []events.Lot{lot("1", "smartcig", cents(39_999, 99))}, nil},
		{"smartcig at 40,000 €", before2024, "pcp", []events.Lot{lot("1", "smartcig", cents(40_000, 0))}, []string{"lot 1: a Smart CIG is for contracts under 40,000 €, this lot is 40000.00 €"}},
		{"smartcig from 1 January 2024 in Rome", from2024, "pcp", []events.Lot{lot("1", "smartcig", cents(1_000, 0))}, []string{"lot 1: Smart CIGs are not issued since 1 January 2024, the tender was published on 2024-01-01"}},
		{"smartcig both", from2024, "pcp", []events.Lot{lot("1", "smartcig", cents(50_000, 5))}, []string{"this lot is 50000.05 €", "published on 2024-01-01"}},
		{"smartcig by default: the operator's choice", from2024, "smartcig", []events.Lot{lot("1", "", cents(1_000, 0))}, nil},
		{"smartcig lot that has its CIG", from2024, "pcp", []events.Lot{{LotID: "1", CIGService: "smartcig", CIG: "Z3B3885F48", BaseAmountCents: cents(90_000, 0)}}, nil},
		{"pcp before 2024", before2024, "simog", []events.Lot{lot("1", "pcp", cents(200_000, 0))}, []string{"lot 1: PCP issues CIGs since 1 January 2024, the tender was published on 2023-12-31"}},
		{"pcp by default before 2024: the operator's choice", before2024, "pcp", []events.Lot{lot("1", "", cents(200_000, 0))}, nil},
		{"pcp from 2024", from2024, "pcp", []events.Lot{lot("1", "pcp", cents(200_000, 0))}, nil},
		{"simog any time", utc("2021-05-04T10:00:00Z"), "pcp", []events.Lot{lot("1", "simog", cents(5_000_000, 0))}, nil},
		{"each lot on its own", before2024, "pcp", []events.Lot{lot("1", "simog", cents(50_000, 0)), lot("2", "smartcig", cents(40_000, 0)), lot("3", "pcp", 0)},
			[]string{"lot 2: a Smart CIG", "lot 3: PCP issues"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = tt.dflt // the default service never warns
			got := Warnings(&events.TenderPublished{TenderID: tenderID, PublishedAt: tt.published, Lots: tt.lots})
			if len(got) != len(tt.want) {
				t.Fatalf("Warnings = %q, want %d matching %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}
