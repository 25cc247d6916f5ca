package contribution

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func romeLoc(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatalf("load Europe/Rome: %v", err)
	}
	return loc
}

func TestDefaultSchedulesMakeATable(t *testing.T) {
	tb, err := NewTable(DefaultSchedules())
	if err != nil {
		t.Fatal(err)
	}
	var ids, froms []string
	for _, s := range tb.Schedules {
		ids = append(ids, s.ID)
		froms = append(froms, s.From)
	}
	if want := []string{"anac-2021", "anac-2023"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids = %q, want %q", ids, want)
	}
	if want := []string{"2021-01-01", "2023-04-01"}; !reflect.DeepEqual(froms, want) {
		t.Errorf("froms = %q, want %q", froms, want)
	}
	if !reflect.DeepEqual(DefaultTable(), tb) {
		t.Error("DefaultTable differs from NewTable(DefaultSchedules())")
	}
}

func TestOwedBracketEdges(t *testing.T) {
	loc := romeLoc(t)
	old := time.Date(2022, time.June, 15, 12, 0, 0, 0, loc)
	cur := time.Date(2024, time.June, 15, 12, 0, 0, 0, loc)
	tests := []struct {
		name string
		base int64
		at   time.Time
		want Amount
	}{
		{"2021 zero base", 0, old, Amount{Table: "anac-2021", Known: true, Exempt: true}},
		{"2021 149,999.99 exempt", 14_999_999, old, Amount{Table: "anac-2021", Known: true, Exempt: true}},
		{"2021 150,000.00", 15_000_000, old, Amount{Cents: 20 * Euro, Table: "anac-2021", Known: true}},
		{"2021 299,999.99", 29_999_999, old, Amount{Cents: 20 * Euro, Table: "anac-2021", Known: true}},
		{"2021 300,000.00", 30_000_000, old, Amount{Cents: 35 * Euro, Table: "anac-2021", Known: true}},
		{"2021 500,000.00", 50_000_000, old, Amount{Cents: 70 * Euro, Table: "anac-2021", Known: true}},
		{"2021 800,000.00", 80_000_000, old, Amount{Cents: 80 * Euro, Table: "anac-2021", Known: true}},
		{"2021 1,000,000.00", 100_000_000, old, Amount{Cents: 140 * Euro, Table: "anac-2021", Known: true}},
		{"2021 5,000,000.00", 500_000_000, old, Amount{Cents: 200 * Euro, Table: "anac-2021", Known: true}},
		{"2021 19,999,999.99", 1_999_999_999, old, Amount{Cents: 200 * Euro, Table: "anac-2021", Known: true}},
		{"2021 20,000,000.00", 2_000_000_000, old, Amount{Cents: 500 * Euro, Table: "anac-2021", Known: true}},
		{"2021 huge base", 1 << 62, old, Amount{Cents: 500 * Euro, Table: "anac-2021", Known: true}},
		{"2021 negative base", -1, old, Amount{Table: "anac-2021", Known: true, Exempt: true}},
		{"2023 zero base", 0, cur, Amount{Table: "anac-2023", Known: true, Exempt: true}},
		{"2023 149,999.99 exempt", 14_999_999, cur, Amount{Table: "anac-2023", Known: true, Exempt: true}},
		{"2023 150,000.00", 15_000_000, cur, Amount{Cents: 18 * Euro, Table: "anac-2023", Known: true}},
		{"2023 299,999.99", 29_999_999, cur, Amount{Cents: 18 * Euro, Table: "anac-2023", Known: true}},
		{"2023 300,000.00", 30_000_000, cur, Amount{Cents: 33 * Euro, Table: "anac-2023", Known: true}},
		{"2023 500,000.00", 50_000_000, cur, Amount{Cents: 77 * Euro, Table: "anac-2023", Known: true}},
		{"2023 800,000.00", 80_000_000, cur, Amount{Cents: 90 * Euro, Table: "anac-2023", Known: true}},
		{"2023 1,000,000.00", 100_000_000, cur, Amount{Cents: 165 * Euro, Table: "anac-2023", Known: true}},
		{"2023 5,000,000.00", 500_000_000, cur, Amount{Cents: 220 * Euro, Table: "anac-2023", Known: true}},
		{"2023 19,999,999.99", 1_999_999_999, cur, Amount{Cents: 220 * Euro, Table: "anac-2023", Known: true}},
		{"2023 20,000,000.00", 2_000_000_000, cur, Amount{Cents: 560 * Euro, Table: "anac-2023", Known: true}},
		{"2023 huge base", 1 << 62, cur, Amount{Cents: 560 * Euro, Table: "anac-2023", Known: true}},
		// The seed's story: a 450,000 € lot of a tender published on 4 May 2021.
		{"450,000 published 4 May 2021", 45_000_000, time.Date(2021, time.May, 4, 10, 0, 0, 0, loc), Amount{Cents: 35 * Euro, Table: "anac-2021", Known: true}},
	}
	table := DefaultTable()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := table.Owed(tt.base, tt.at); got != tt.want {
				t.Errorf("Owed(%d, %s) = %+v, want %+v", tt.base, tt.at, got, tt.want)
			}
		})
	}
}

func TestOwedByPublicationDate(t *testing.T) {
	loc := romeLoc(t)
	const base = 15_000_000 // €150,000: €20 before 1 April 2023, €18 from it
	y21 := Amount{Cents: 20 * Euro, Table: "anac-2021", Known: true}
	y23 := Amount{Cents: 18 * Euro, Table: "anac-2023", Known: true}
	unknown := Amount{}
	tests := []struct {
		name string
		at   time.Time
		want Amount
	}{
		{"zero time is not covered", time.Time{}, unknown},
		{"2019 is not covered", time.Date(2019, time.June, 1, 12, 0, 0, 0, loc), unknown},
		{"2020-12-31 Rome last second is not covered", time.Date(2020, time.December, 31, 23, 59, 59, 999_999_999, loc), unknown},
		{"2020-12-31T22:59:59Z is still 2020 in Rome", time.Date(2020, time.December, 31, 22, 59, 59, 0, time.UTC), unknown},
		{"2020-12-31T23:00:00Z is 2021-01-01 in Rome", time.Date(2020, time.December, 31, 23, 0, 0, 0, time.UTC), y21},
		{"2021-01-01 Rome midnight", time.Date(2021, time.January, 1, 0, 0, 0, 0, loc), y21},
		{"2023-03-31 Rome start of day", time.Date(2023, time.March, 31, 0, 0, 0, 0, loc), y21},
		{"2023-03-31 Rome last instant", time.Date(2023, time.March, 31, 23, 59, 59, 999_999_999, loc), y21},
		{"2023-03-31T21:59:59Z is still 31 March in Rome", time.Date(2023, time.March, 31, 21, 59, 59, 0, time.UTC), y21},
		{"2023-03-31T22:00:00Z is 1 April in Rome (UTC+2)", time.Date(2023, time.March, 31, 22, 0, 0, 0, time.UTC), y23},
		{"2023-04-01 Rome midnight", time.Date(2023, time.April, 1, 0, 0, 0, 0, loc), y23},
		{"2023-03-31 20:30 at UTC-1:30 is 1 April midnight in Rome", time.Date(2023, time.March, 31, 20, 30, 0, 0, time.FixedZone("-0130", -90*60)), y23},
		{"2023-03-31 23:30 in New York is already 1 April in Rome", time.Date(2023, time.March, 31, 23, 30, 0, 0, time.FixedZone("EDT", -4*60*60)), y23},
		{"far future uses the last schedule", time.Date(2040, time.January, 1, 0, 0, 0, 0, loc), y23},
	}
	table := DefaultTable()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := table.Owed(base, tt.at); got != tt.want {
				t.Errorf("Owed(%d, %s) = %+v, want %+v", base, tt.at.Format(time.RFC3339Nano), got, tt.want)
			}
		})
	}
}

func TestOwedNeverSilentlyZero(t *testing.T) {
	before := time.Date(2020, time.March, 1, 12, 0, 0, 0, time.UTC)
	got := DefaultTable().Owed(2_000_000_000, before)
	if got.Known || got.Exempt || got.Cents != 0 || got.Table != "" {
		t.Errorf("Owed before every schedule = %+v, want not Known and not Exempt", got)
	}
}

func TestOwedTableLiteral(t *testing.T) {
	// A Table not built by NewTable, listed out of order with a bad date, still
	// answers from the schedules whose dates parse.
	d := DefaultSchedules()
	lit := Table{Schedules: []Schedule{d[1], {ID: "bad", From: "1 Jan 2020", Brackets: d[0].Brackets}, d[0]}}
	at := time.Date(2022, time.January, 1, 12, 0, 0, 0, time.UTC)
	want := Amount{Cents: 35 * Euro, Table: "anac-2021", Known: true}
	if got := lit.Owed(30_000_000, at); got != want {
		t.Errorf("Owed on a literal table = %+v, want %+v", got, want)
	}
	if got := (Table{}).Owed(15_000_000, at); got != (Amount{}) {
		t.Errorf("Owed on an empty table = %+v, want the zero Amount", got)
	}
}

func TestDefaultSchedulesAreFresh(t *testing.T) {
	a := DefaultSchedules()
	a[0].Brackets[1].AmountCents = 1
	a[1].ID = "changed"
	b := DefaultSchedules()
	if b[0].Brackets[1].AmountCents != 20*Euro || b[1].ID != "anac-2023" {
		t.Fatal("modifying one DefaultSchedules result changed another")
	}
}

func TestNewTableCopies(t *testing.T) {
	in := DefaultSchedules()
	tb, err := NewTable(in)
	if err != nil {
		t.Fatal(err)
	}
	in[0].Brackets[1].AmountCents = 1
	in[0].ID = "changed"
	if tb.Schedules[0].Brackets[1].AmountCents != 20*Euro || tb.Schedules[0].ID != "anac-2021" {
		t.Fatal("modifying the schedules given to NewTable changed the Table")
	}
}

func TestNewTableErrors(t *testing.T) {
	ok := []Bracket{{0, 0}, {15_000_000, 2000}}
	sch := func(id, from string, b []Bracket) Schedule { return Schedule{ID: id, From: from, Brackets: b} }
	tests := []struct {
		name string
		in   []Schedule
		want []string
	}{
		{"no schedules", nil, []string{"no schedules"}},
		{"empty id", []Schedule{sch("", "2021-01-01", ok)}, []string{"schedule 1 has no id"}},
		{"duplicate id", []Schedule{sch("a", "2021-01-01", ok), sch("a", "2023-04-01", ok)},
			[]string{`schedule 2 "a" has the same id as schedule 1`}},
		{"bad date", []Schedule{sch("a", "2021-01-01", ok), sch("b", "2023-4-1", ok)},
			[]string{`schedule 2 "b": from "2023-4-1" is not a date`, "2023-04-01"}},
		{"no date", []Schedule{sch("a", "", ok)}, []string{`schedule 1 "a": from "" is not a date`}},
		{"impossible date", []Schedule{sch("a", "2023-02-30", ok)}, []string{`from "2023-02-30" is not a date`}},
		{"overlap", []Schedule{sch("a", "2021-01-01", ok), sch("b", "2021-01-01", ok)},
			[]string{`schedule 2 "b" and schedule 1 "a" overlap`, "2021-01-01"}},
		{"not sorted", []Schedule{sch("anac-2023", "2023-04-01", ok), sch("anac-2021", "2021-01-01", ok)},
			[]string{`not sorted: schedule 2 "anac-2021" (from 2021-01-01) comes after schedule 1 "anac-2023" (from 2023-04-01)`}},
		{"empty brackets", []Schedule{sch("a", "2021-01-01", ok), sch("b", "2023-04-01", nil)},
			[]string{`schedule 2 "b": no brackets`}},
		{"first bracket above 0", []Schedule{sch("a", "2021-01-01", []Bracket{{15_000_000, 2000}})},
			[]string{`schedule 1 "a": bracket 1 starts at from_cents 15000000`, "must start at 0"}},
		{"brackets out of order", []Schedule{sch("a", "2021-01-01", []Bracket{{0, 0}, {30_000_000, 3500}, {15_000_000, 2000}})},
			[]string{"bracket 3 (from_cents 15000000) does not start above bracket 2 (from_cents 30000000)"}},
		{"duplicate bracket", []Schedule{sch("a", "2021-01-01", []Bracket{{0, 0}, {0, 100}})},
			[]string{"bracket 2 (from_cents 0) does not start above bracket 1"}},
		{"negative amount", []Schedule{sch("a", "2021-01-01", []Bracket{{0, -1}})}, []string{"bracket 1 has negative amount_cents -1"}},
		{"negative from", []Schedule{sch("a", "2021-01-01", []Bracket{{0, 0}, {-100, 0}})}, []string{"bracket 2 has negative from_cents -100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := NewTable(tt.in)
			if err == nil {
				t.Fatalf("NewTable = %+v, want an error", tb)
			}
			if !errors.Is(err, ErrInvalidTable) {
				t.Errorf("error %v does not wrap ErrInvalidTable", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !reflect.DeepEqual(tb, Table{}) {
				t.Errorf("NewTable returned %+v with its error, want the zero Table", tb)
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	in := DefaultSchedules()
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"id":"anac-2023"`, `"from":"2023-04-01"`, `"brackets"`, `"from_cents":15000000`, `"amount_cents":1800`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("JSON %s does not contain %s", data, key)
		}
	}
	var out []Schedule
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("the round trip changed the schedules:\n got %+v\nwant %+v", out, in)
	}
}
