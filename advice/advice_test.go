package advice

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/outage"
	"github.com/promemoria/promemoria/tender"
)

// rt returns the Europe/Rome instant written as "2006-01-02 15:04:05".
func rt(s string) time.Time {
	t, err := time.ParseInLocation(time.DateTime, s, rome)
	if err != nil {
		panic(err)
	}
	return t
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

var policy = Policy{BidderServices: []string{"payments", "fvoe"}, Settle: 5 * time.Minute, Calendar: calendar.New(rome)}

// A tender published on Monday 2 March 2026 at 10:00, offers due on
// Friday 20 March at 12:00; now is Wednesday 11 March at noon.
var (
	published = rt("2026-03-02 10:00:00")
	deadline  = rt("2026-03-20 12:00:00")
	noon      = rt("2026-03-11 12:00:00")
)

// span is an outage of a service from from to to ("" while ongoing), in
// Rome time.
type span struct{ service, from, to string }

// history builds the services' histories from the outages.
func history(spans ...span) func(string) *outage.Service {
	m := map[string]*outage.Service{}
	for _, s := range spans {
		svc := m[s.service]
		if svc == nil {
			svc = &outage.Service{Name: s.service}
			m[s.service] = svc
		}
		svc.Apply(outage.Transition{At: rt(s.from)})
		if s.to != "" {
			svc.Apply(outage.Transition{At: rt(s.to), Up: true})
		}
	}
	return func(name string) *outage.Service { return m[name] }
}

// smartLot is lot 1, published without its CIG (Smart CIG), which arrived
// at cigAt ("": not yet).
func smartLot(cigAt string) *tender.Lot {
	l := &tender.Lot{LotID: "1", Published: true, CIGService: "smartcig", BaseAmountCents: 30_000_00, MissingAtPublication: true}
	if cigAt != "" {
		l.CIG, l.CIGRef = "Z3B3885F48", tender.Ref{Source: "test", ID: "a1", Time: rt(cigAt).UTC()}
	}
	return l
}

// withCIG is lot 2, published with its CIG (PCP) by an event sent a day
// after the published_at it carries.
func withCIG() *tender.Lot {
	return &tender.Lot{LotID: "2", Published: true, CIGService: "pcp", BaseAmountCents: 500_000_00, CIG: "B00012EADB",
		CIGRef: tender.Ref{Source: "test", ID: "p1", Time: published.Add(24 * time.Hour).UTC()}}
}

func newTender(lots ...*tender.Lot) *tender.Tender {
	return &tender.Tender{
		TenderID: "2026/7", Title: "Manutenzione strade", RUP: events.Person{Name: "Maria Rossi", Email: "rup@comune.example.it"},
		PublishedAt: published.UTC(), OfferDeadline: deadline.UTC(), Lots: lots,
	}
}

// outageSpan is what the advice lists for an outage, in UTC.
func outageSpan(service, from, to string) events.OutageSpan {
	return events.OutageSpan{Service: service, From: rt(from).UTC(), To: rt(to).UTC()}
}

func sameSpans(a, b []events.OutageSpan) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Service != b[i].Service || !a[i].From.Equal(b[i].From) || !a[i].To.Equal(b[i].To) ||
			a[i].From.Location() != time.UTC || a[i].To.Location() != time.UTC {
			return false
		}
	}
	return true
}

func TestDecide(t *testing.T) {
	cancelled := newTender()
	cancelled.Cancelled = true
	type want struct {
		overlap  time.Duration
		proposed time.Time
		outages  []events.OutageSpan
	}
	tests := []struct {
		name    string
		tender  *tender.Tender
		outages []span
		now     time.Time
		want    *want // nil: no advice
	}{
		{name: "no outage", tender: newTender(), now: noon},
		{name: "payments down 4h", tender: newTender(), outages: []span{{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: noon,
			want: &want{4 * time.Hour, rt("2026-03-20 16:00:00"), []events.OutageSpan{outageSpan("payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00")}}},
		{name: "fvoe down 4h", tender: newTender(), outages: []span{{"fvoe", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: noon,
			want: &want{4 * time.Hour, rt("2026-03-20 16:00:00"), []events.OutageSpan{outageSpan("fvoe", "2026-03-04 10:00:00", "2026-03-04 14:00:00")}}},
		{name: "payments and fvoe overlapping each other count once", tender: newTender(), outages: []span{
			{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}, {"fvoe", "2026-03-04 12:00:00", "2026-03-04 16:00:00"}}, now: noon,
			want: &want{6 * time.Hour, rt("2026-03-20 18:00:00"), []events.OutageSpan{
				outageSpan("payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"), outageSpan("fvoe", "2026-03-04 12:00:00", "2026-03-04 16:00:00")}}},
		{name: "one outage inside another: the longer counts", tender: newTender(), outages: []span{
			{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}, {"fvoe", "2026-03-04 10:00:00", "2026-03-04 12:00:00"}}, now: noon,
			want: &want{4 * time.Hour, rt("2026-03-20 16:00:00"), []events.OutageSpan{
				outageSpan("fvoe", "2026-03-04 10:00:00", "2026-03-04 12:00:00"), outageSpan("payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00")}}},
		{name: "back to back outages of two services add up", tender: newTender(), outages: []span{
			{"payments", "2026-03-04 10:00:00", "2026-03-04 12:00:00"}, {"fvoe", "2026-03-04 12:00:00", "2026-03-04 13:00:00"}}, now: noon,
			want: &want{3 * time.Hour, rt("2026-03-20 15:00:00"), []events.OutageSpan{
				outageSpan("payments", "2026-03-04 10:00:00", "2026-03-04 12:00:00"), outageSpan("fvoe", "2026-03-04 12:00:00", "2026-03-04 13:00:00")}}},
		{name: "two outages of one service add up", tender: newTender(), outages: []span{
			{"payments", "2026-03-04 10:00:00", "2026-03-04 12:00:00"}, {"payments", "2026-03-05 10:00:00", "2026-03-05 12:00:00"}}, now: noon,
			want: &want{4 * time.Hour, rt("2026-03-20 16:00:00"), []events.OutageSpan{
				outageSpan("payments", "2026-03-04 10:00:00", "2026-03-04 12:00:00"), outageSpan("payments", "2026-03-05 10:00:00", "2026-03-05 12:00:00")}}},
		{name: "outage before the offer period: ignored", tender: newTender(), outages: []span{{"payments", "2026-02-27 10:00:00", "2026-02-27 14:00:00"}}, now: noon},
		{name: "outage before the offer period and one inside: only the latter", tender: newTender(), outages: []span{
			{"payments", "2026-02-27 10:00:00", "2026-02-27 14:00:00"}, {"payments", "2026-03-04 10:00:00", "2026-03-04 11:00:00"}}, now: noon,
			want: &want{time.Hour, rt("2026-03-20 13:00:00"), []events.OutageSpan{outageSpan("payments", "2026-03-04 10:00:00", "2026-03-04 11:00:00")}}},
		{name: "outage across the publication: from the publication", tender: newTender(), outages: []span{{"payments", "2026-03-02 08:00:00", "2026-03-02 12:00:00"}}, now: noon,
			want: &want{2 * time.Hour, rt("2026-03-20 14:00:00"), []events.OutageSpan{outageSpan("payments", "2026-03-02 08:00:00", "2026-03-02 12:00:00")}}},
		{name: "a service bidders do not need: ignored", tender: newTender(withCIG()), outages: []span{
			{"pcp", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}, {"simog", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: noon},
		{name: "CIG service while the lot lacked its CIG", tender: newTender(smartLot("2026-03-05 10:00:00")), outages: []span{
			{"smartcig", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: noon,
			want: &want{4 * time.Hour, rt("2026-03-20 16:00:00"), []events.OutageSpan{outageSpan("smartcig", "2026-03-04 10:00:00", "2026-03-04 14:00:00")}}},
		{name: "CIG service after the lot got its CIG: ignored", tender: newTender(smartLot("2026-03-05 10:00:00")), outages: []span{
			{"smartcig", "2026-03-06 10:00:00", "2026-03-06 14:00:00"}}, now: noon},
		{name: "CIG service across the CIG's arrival: until the CIG", tender: newTender(smartLot("2026-03-05 10:00:00")), outages: []span{
			{"smartcig", "2026-03-05 08:00:00", "2026-03-05 12:00:00"}}, now: noon,
			want: &want{2 * time.Hour, rt("2026-03-20 14:00:00"), []events.OutageSpan{outageSpan("smartcig", "2026-03-05 08:00:00", "2026-03-05 12:00:00")}}},
		{name: "CIG service down now, after the CIG: does not hold the advice back", tender: newTender(smartLot("2026-03-05 10:00:00")), outages: []span{
			{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}, {"smartcig", "2026-03-10 10:00:00", ""}}, now: noon,
			want: &want{4 * time.Hour, rt("2026-03-20 16:00:00"), []events.OutageSpan{outageSpan("payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00")}}},
		{name: "lot still without CIG: the CIG service counts", tender: newTender(smartLot("")), outages: []span{
			{"smartcig", "2026-03-06 10:00:00", "2026-03-06 14:00:00"}}, now: noon,
			want: &want{4 * time.Hour, rt("2026-03-20 16:00:00"), []events.OutageSpan{outageSpan("smartcig", "2026-03-06 10:00:00", "2026-03-06 14:00:00")}}},
		{name: "lot published with its CIG: its service does not count", tender: newTender(withCIG()), outages: []span{
			{"pcp", "2026-03-02 12:00:00", "2026-03-02 14:00:00"}, {"pcp", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: noon},
		{name: "lot known only from cig_assigned: ignored", tender: newTender(&tender.Lot{LotID: "3", CIGService: "smartcig"}), outages: []span{
			{"smartcig", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: noon},
		{name: "CIG service and payments overlapping count once", tender: newTender(smartLot("")), outages: []span{
			{"smartcig", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}, {"payments", "2026-03-04 13:00:00", "2026-03-04 15:00:00"}}, now: noon,
			want: &want{5 * time.Hour, rt("2026-03-20 17:00:00"), []events.OutageSpan{
				outageSpan("smartcig", "2026-03-04 10:00:00", "2026-03-04 14:00:00"), outageSpan("payments", "2026-03-04 13:00:00", "2026-03-04 15:00:00")}}},

		// Not over yet.
		{name: "ongoing outage: wait", tender: newTender(), outages: []span{{"payments", "2026-03-10 10:00:00", ""}}, now: noon},
		{name: "ongoing outage after a finished one: wait for the total", tender: newTender(), outages: []span{
			{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}, {"fvoe", "2026-03-10 10:00:00", ""}}, now: noon},
		{name: "restored 2 minutes ago, not settled: wait", tender: newTender(), outages: []span{{"payments", "2026-03-11 09:00:00", "2026-03-11 11:58:00"}}, now: noon},
		{name: "restored, settled a second early: wait", tender: newTender(), outages: []span{{"payments", "2026-03-11 09:00:00", "2026-03-11 11:55:01"}}, now: noon},
		{name: "restored and settled: advice", tender: newTender(), outages: []span{{"payments", "2026-03-11 09:00:00", "2026-03-11 11:55:00"}}, now: noon,
			want: &want{2*time.Hour + 55*time.Minute, rt("2026-03-20 14:55:00"), []events.OutageSpan{outageSpan("payments", "2026-03-11 09:00:00", "2026-03-11 11:55:00")}}},

		// Too late, or nothing to advise.
		{name: "cancelled tender", tender: cancelled, outages: []span{{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: noon},
		{name: "a second before the deadline: advice", tender: newTender(), outages: []span{{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: deadline.Add(-time.Second),
			want: &want{4 * time.Hour, rt("2026-03-20 16:00:00"), []events.OutageSpan{outageSpan("payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00")}}},
		{name: "at the deadline: none", tender: newTender(), outages: []span{{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: deadline},
		{name: "deadline passed: none", tender: newTender(), outages: []span{{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: deadline.Add(time.Hour)},
		{name: "tender not published yet (bids first)", tender: func() *tender.Tender {
			tn := newTender()
			tn.PublishedAt, tn.OfferDeadline = time.Time{}, time.Time{}
			return tn
		}(),
			outages: []span{{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: noon},
		{name: "no offer deadline", tender: func() *tender.Tender { tn := newTender(); tn.OfferDeadline = time.Time{}; return tn }(),
			outages: []span{{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}, now: noon},
		{name: "less than a second: none", tender: newTender(), outages: []span{{"payments", "2026-03-04 10:00:00", "2026-03-04 10:00:00.9"}}, now: noon},
		{name: "whole seconds", tender: newTender(), outages: []span{{"payments", "2026-03-04 10:00:00.6", "2026-03-04 11:00:00.3"}}, now: noon,
			want: &want{59*time.Minute + 59*time.Second, rt("2026-03-20 12:59:59"), []events.OutageSpan{{Service: "payments", From: rt("2026-03-04 10:00:00.6").UTC(), To: rt("2026-03-04 11:00:00.3").UTC()}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.tender, history(tt.outages...), policy, tt.now)
			if tt.want == nil {
				if got != nil {
					t.Fatalf("Decide = %+v, want none", *got)
				}
				return
			}
			if got == nil {
				t.Fatal("Decide = nil, want an advice")
			}
			if got.Overlap != tt.want.overlap || !got.Proposed.Equal(tt.want.proposed) || !got.Deadline.Equal(deadline) {
				t.Errorf("overlap %v proposed %v deadline %v; want %v %v %v", got.Overlap, got.Proposed.In(rome), got.Deadline, tt.want.overlap, tt.want.proposed, deadline)
			}
			if !sameSpans(got.Outages, tt.want.outages) {
				t.Errorf("outages %+v\nwant %+v", got.Outages, tt.want.outages)
			}
			if got.LegalBasis != BasisCode2023 {
				t.Errorf("legal basis %q", got.LegalBasis)
			}
			if !regexp.MustCompile(`^adv-[a-z2-7]{24}$`).MatchString(got.ID) {
				t.Errorf("id %q", got.ID)
			}
		})
	}
}

func TestDecideNoHistory(t *testing.T) {
	if got := Decide(newTender(smartLot("")), func(string) *outage.Service { return nil }, policy, noon); got != nil {
		t.Errorf("Decide = %+v, want none", *got)
	}
}

func TestDecideAdvised(t *testing.T) {
	outs := history(span{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"})
	first := Decide(newTender(), outs, policy, noon)
	if first == nil {
		t.Fatal("no first advice")
	}
	secs := int64(first.Overlap / time.Second)
	tests := []struct {
		name    string
		advised *tender.Advised
		want    bool
	}{
		{"never advised", nil, true},
		{"advised with the same overlap", &tender.Advised{ID: first.ID, OverlapSeconds: secs}, false},
		{"advised with a larger overlap", &tender.Advised{ID: "adv-other", OverlapSeconds: secs + 1}, false},
		{"advised with a smaller overlap", &tender.Advised{ID: "adv-other", OverlapSeconds: secs - 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := newTender()
			tn.Advised = tt.advised
			got := Decide(tn, outs, policy, noon.Add(time.Hour))
			if (got != nil) != tt.want {
				t.Fatalf("Decide = %+v, want advice %v", got, tt.want)
			}
			if got != nil && got.ID != first.ID {
				t.Errorf("id %q, want %q: same outages, same id", got.ID, first.ID)
			}
		})
	}
}

func TestDecideID(t *testing.T) {
	one := []span{{"payments", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}}
	two := append(append([]span(nil), one...), span{"fvoe", "2026-03-09 10:00:00", "2026-03-09 12:00:00"})
	a := Decide(newTender(), history(one...), policy, noon)
	if a == nil {
		t.Fatal("no advice")
	}
	t.Run("same outages, later: same id", func(t *testing.T) {
		b := Decide(newTender(), history(one...), policy, noon.Add(48*time.Hour))
		if b == nil || b.ID != a.ID {
			t.Errorf("Decide later = %+v, want id %q", b, a.ID)
		}
	})
	t.Run("same outages reported in another order: same id", func(t *testing.T) {
		b := Decide(newTender(), history(two[1], two[0]), policy, noon)
		c := Decide(newTender(), history(two...), policy, noon)
		if b == nil || c == nil || b.ID != c.ID {
			t.Errorf("ids %+v and %+v differ", b, c)
		}
	})
	t.Run("a later outage: new id, bigger total", func(t *testing.T) {
		tn := newTender()
		tn.Advised = &tender.Advised{ID: a.ID, OverlapSeconds: int64(a.Overlap / time.Second)}
		b := Decide(tn, history(two...), policy, noon)
		if b == nil {
			t.Fatal("no second advice")
		}
		if b.ID == a.ID || b.Overlap != a.Overlap+2*time.Hour || len(b.Outages) != 2 {
			t.Errorf("second advice %+v; want a new id and %v", *b, a.Overlap+2*time.Hour)
		}
		if !b.Proposed.Equal(rt("2026-03-20 18:00:00")) {
			t.Errorf("proposed %v, want the deadline plus the new total", b.Proposed.In(rome))
		}
	})
	t.Run("another tender: another id", func(t *testing.T) {
		tn := newTender()
		tn.TenderID = "2026/8"
		if b := Decide(tn, history(one...), policy, noon); b == nil || b.ID == a.ID {
			t.Errorf("Decide = %+v, want an id other than %q", b, a.ID)
		}
	})
	t.Run("same start, another end: another id", func(t *testing.T) {
		b := Decide(newTender(), history(span{"payments", "2026-03-04 10:00:00", "2026-03-04 15:00:00"}), policy, noon)
		if b == nil || b.ID == a.ID {
			t.Errorf("Decide = %+v, want an id other than %q", b, a.ID)
		}
	})
	t.Run("same times, another service: another id", func(t *testing.T) {
		b := Decide(newTender(), history(span{"fvoe", "2026-03-04 10:00:00", "2026-03-04 14:00:00"}), policy, noon)
		if b == nil || b.ID == a.ID {
			t.Errorf("Decide = %+v, want an id other than %q", b, a.ID)
		}
	})
}

func TestDecideProposedDeadlineRolls(t *testing.T) {
	patron, err := calendar.ParseClosure("06-29")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cal      *calendar.Calendar
		deadline time.Time
		outage   span
		want     time.Time
	}{
		{"Friday + 24h before Easter Monday: Tuesday", calendar.New(rome), rt("2026-04-03 12:00:00"),
			span{"payments", "2026-03-25 12:00:00", "2026-03-26 12:00:00"}, rt("2026-04-07 12:00:00")},
		{"same with no calendar: national holidays still known", nil, rt("2026-04-03 12:00:00"),
			span{"payments", "2026-03-25 12:00:00", "2026-03-26 12:00:00"}, rt("2026-04-07 12:00:00")},
		{"Monday 1 June + 24h: 2 June is a holiday", calendar.New(rome), rt("2026-06-01 12:00:00"),
			span{"payments", "2026-03-25 12:00:00", "2026-03-26 12:00:00"}, rt("2026-06-03 12:00:00")},
		{"Friday + 72h onto a patron day", calendar.New(rome, patron), rt("2026-06-26 12:00:00"),
			span{"payments", "2026-03-25 12:00:00", "2026-03-28 12:00:00"}, rt("2026-06-30 12:00:00")},
		{"same without the patron day", calendar.New(rome), rt("2026-06-26 12:00:00"),
			span{"payments", "2026-03-25 12:00:00", "2026-03-28 12:00:00"}, rt("2026-06-29 12:00:00")},
		{"working day: unchanged", calendar.New(rome), rt("2026-04-01 12:00:00"),
			span{"payments", "2026-03-25 12:00:00", "2026-03-25 16:30:00"}, rt("2026-04-01 16:30:00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := newTender()
			tn.OfferDeadline = tt.deadline.UTC()
			p := policy
			p.Calendar = tt.cal
			got := Decide(tn, history(tt.outage), p, rt("2026-03-30 12:00:00"))
			if got == nil {
				t.Fatal("no advice")
			}
			if !got.Proposed.Equal(tt.want) {
				t.Errorf("proposed %v, want %v", got.Proposed.In(rome), tt.want)
			}
			if !got.Deadline.Equal(tt.deadline) {
				t.Errorf("deadline %v, want %v", got.Deadline, tt.deadline)
			}
		})
	}
}

func TestLegalBasis(t *testing.T) {
	tests := []struct {
		published time.Time
		want      string
	}{
		{utc("2021-05-04T10:00:00Z"), BasisCode2016},
		{utc("2023-06-30T21:59:59Z"), BasisCode2016}, // 23:59:59 on 30 June in Rome
		{utc("2023-06-30T22:00:00Z"), BasisCode2023}, // midnight of 1 July in Rome
		{utc("2026-03-02T09:00:00Z"), BasisCode2023},
		{time.Time{}, BasisCode2023},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.published), func(t *testing.T) {
			if got := LegalBasis(tt.published); got != tt.want {
				t.Errorf("LegalBasis = %q, want %q", got, tt.want)
			}
			if tt.published.IsZero() {
				return
			}
			// The advice cites the same rule.
			tn := newTender()
			tn.PublishedAt, tn.OfferDeadline = tt.published, tt.published.Add(30*24*time.Hour)
			from := tt.published.Add(24 * time.Hour)
			svc := &outage.Service{Name: "payments"}
			svc.Apply(outage.Transition{At: from})
			svc.Apply(outage.Transition{At: from.Add(time.Hour), Up: true})
			a := Decide(tn, func(name string) *outage.Service {
				if name == "payments" {
					return svc
				}
				return nil
			}, policy, from.Add(2*time.Hour))
			if a == nil || a.LegalBasis != tt.want {
				t.Errorf("Decide = %+v, want legal basis %q", a, tt.want)
			}
		})
	}
}

// TestMinOverlap checks that an overlap under the policy's minimum gives no
// advice, and one at the minimum does.
func TestMinOverlap(t *testing.T) {
	published := time.Date(2026, time.March, 2, 9, 0, 0, 0, rome)
	deadline := published.Add(10 * 24 * time.Hour)
	tn := &tender.Tender{TenderID: "T-MIN", PublishedAt: published, OfferDeadline: deadline}
	svc := &outage.Service{Name: "payments"}
	from := published.Add(24 * time.Hour)
	svc.Apply(outage.Transition{At: from})
	svc.Apply(outage.Transition{At: from.Add(time.Hour), Up: true})
	lookup := func(name string) *outage.Service {
		if name == "payments" {
			return svc
		}
		return nil
	}
	now := from.Add(2 * time.Hour)
	for _, tc := range []struct {
		min  time.Duration
		want bool
	}{{0, true}, {time.Hour, true}, {time.Hour + time.Second, false}} {
		a := Decide(tn, lookup, Policy{BidderServices: []string{"payments"}, MinOverlap: tc.min}, now)
		if (a != nil) != tc.want {
			t.Errorf("MinOverlap %s: advice %v, want %v", tc.min, a != nil, tc.want)
		}
	}
}

// TestPaymentsOnlyWhenSomeoneOwes checks that the payments platform's
// outage counts only for a tender with a lot whose bidders owe a
// contribution.
func TestPaymentsOnlyWhenSomeoneOwes(t *testing.T) {
	published := time.Date(2026, time.March, 2, 9, 0, 0, 0, rome)
	from := published.Add(24 * time.Hour)
	svc := &outage.Service{Name: "payments"}
	svc.Apply(outage.Transition{At: from})
	svc.Apply(outage.Transition{At: from.Add(3 * time.Hour), Up: true})
	lookup := func(name string) *outage.Service {
		if name == "payments" {
			return svc
		}
		return nil
	}
	p := Policy{
		BidderServices: []string{"payments", "fvoe"}, ContributionService: "payments",
		Owes: func(base int64, _ time.Time) bool { return base >= 150_000_00 },
	}
	for _, tc := range []struct {
		name string
		base int64
		want bool
	}{{"exempt lot", 149_999_99, false}, {"lot that owes", 150_000_00, true}, {"unknown amount", 0, true}} {
		tn := &tender.Tender{TenderID: "T", PublishedAt: published, OfferDeadline: published.Add(10 * 24 * time.Hour),
			Lots: []*tender.Lot{{LotID: "1", Published: true, CIG: "918052266A", BaseAmountCents: tc.base}}}
		if got := Decide(tn, lookup, p, from.Add(5*time.Hour)) != nil; got != tc.want {
			t.Errorf("%s: advice %v, want %v", tc.name, got, tc.want)
		}
	}
}
