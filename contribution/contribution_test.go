package contribution

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Rome in the tests even where the system has no zoneinfo
)

func rome(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatalf("load Europe/Rome: %v", err)
	}
	return loc
}

func TestDefaultTableValidates(t *testing.T) {
	if err := DefaultTable().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestOwedBracketEdges(t *testing.T) {
	loc := rome(t)
	old := time.Date(2022, time.June, 15, 12, 0, 0, 0, loc)
	cur := time.Date(2024, time.June, 15, 12, 0, 0, 0, loc)
	tests := []struct {
		name string
		base int64
		at   time.Time
		want int64
	}{
		{"2021-2023 zero base", 0, old, 0},
		{"2021-2023 149,999.99 exempt", 14_999_999, old, 0},
		{"2021-2023 150,000.00", 15_000_000, old, 20 * Euro},
		{"2021-2023 299,999.99", 29_999_999, old, 20 * Euro},
		{"2021-2023 300,000.00", 30_000_000, old, 35 * Euro},
		{"2021-2023 500,000.00", 50_000_000, old, 70 * Euro},
		{"2021-2023 800,000.00", 80_000_000, old, 80 * Euro},
		{"2021-2023 1,000,000.00", 100_000_000, old, 140 * Euro},
		{"2021-2023 5,000,000.00", 500_000_000, old, 200 * Euro},
		{"2021-2023 19,999,999.99", 1_999_999_999, old, 200 * Euro},
		{"2021-2023 20,000,000.00", 2_000_000_000, old, 500 * Euro},
		{"2021-2023 huge base", 1 << 62, old, 500 * Euro},
		{"2021-2023 negative base", -1, old, 0},
		{"from 2023-04 zero base", 0, cur, 0},
		{"from 2023-04 149,999.99 exempt", 14_999_999, cur, 0},
		{"from 2023-04 150,000.00", 15_000_000, cur, 18 * Euro},
		{"from 2023-04 299,999.99", 29_999_999, cur, 18 * Euro},
		{"from 2023-04 300,000.00", 30_000_000, cur, 33 * Euro},
		{"from 2023-04 500,000.00", 50_000_000, cur, 77 * Euro},
		{"from 2023-04 800,000.00", 80_000_000, cur, 90 * Euro},
		{"from 2023-04 1,000,000.00", 100_000_000, cur, 165 * Euro},
		{"from 2023-04 5,000,000.00", 500_000_000, cur, 220 * Euro},
		{"from 2023-04 19,999,999.99", 1_999_999_999, cur, 220 * Euro},
		{"from 2023-04 20,000,000.00", 2_000_000_000, cur, 560 * Euro},
		{"from 2023-04 huge base", 1 << 62, cur, 560 * Euro},
	}
	table := DefaultTable()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := table.Owed(tt.base, tt.at)
			if !ok {
				t.Fatalf("Owed(%d, %s) found no schedule", tt.base, tt.at)
			}
			if got != tt.want {
				t.Errorf("Owed(%d, %s) = %d cents, want %d", tt.base, tt.at, got, tt.want)
			}
		})
	}
}

func TestOwedDateEdges(t *testing.T) {
	loc := rome(t)
	const base = 15_000_000 // €150,000: €20 before 1 April 2023, €18 from it
	tests := []struct {
		name   string
		at     time.Time
		want   int64
		wantOK bool
	}{
		{"before 2021 not covered", time.Date(2020, time.December, 31, 23, 59, 59, 0, loc), 0, false},
		{"2021-01-01 Rome midnight", time.Date(2021, time.January, 1, 0, 0, 0, 0, loc), 20 * Euro, true},
		{"2023-03-31 Rome start of day", time.Date(2023, time.March, 31, 0, 0, 0, 0, loc), 20 * Euro, true},
		{"2023-03-31 Rome last second", time.Date(2023, time.March, 31, 23, 59, 59, 999_999_999, loc), 20 * Euro, true},
		{"2023-04-01 Rome midnight", time.Date(2023, time.April, 1, 0, 0, 0, 0, loc), 18 * Euro, true},
		{"2023-04-01 Rome noon", time.Date(2023, time.April, 1, 12, 0, 0, 0, loc), 18 * Euro, true},
		// at is compared as given, as an instant.
		{"2023-03-31 UTC midnight date-only value", mustParseDate(t, "2023-03-31"), 20 * Euro, true},
		{"2023-04-01 UTC midnight date-only value", mustParseDate(t, "2023-04-01"), 18 * Euro, true},
		{"2023-03-31 21:59:59 UTC is still 31 March in Rome", time.Date(2023, time.March, 31, 21, 59, 59, 0, time.UTC), 20 * Euro, true},
		{"2023-03-31 22:00 UTC is already 1 April in Rome", time.Date(2023, time.March, 31, 22, 0, 0, 0, time.UTC), 18 * Euro, true},
		{"far future uses the last schedule", time.Date(2030, time.January, 1, 0, 0, 0, 0, loc), 18 * Euro, true},
	}
	table := DefaultTable()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := table.Owed(base, tt.at)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("Owed(%d, %s) = %d, %v; want %d, %v", base, tt.at.Format(time.RFC3339Nano), got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func mustParseDate(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDefaultScheduleStartsAreRomeMidnight(t *testing.T) {
	loc := rome(t)
	want := []time.Time{
		time.Date(2021, time.January, 1, 0, 0, 0, 0, loc),
		time.Date(2023, time.April, 1, 0, 0, 0, 0, loc),
	}
	got := DefaultTable().Schedules
	if len(got) != len(want) {
		t.Fatalf("DefaultTable has %d schedules, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].ValidFrom.Equal(want[i]) {
			t.Errorf("schedule %d starts %s, want %s", i+1, got[i].ValidFrom, want[i])
		}
	}
}

func TestDefaultTableIsFresh(t *testing.T) {
	a := DefaultTable()
	a.Schedules[0].Brackets[1].AmountCents = 1
	a.Schedules = append(a.Schedules[:0], a.Schedules[1:]...)
	b := DefaultTable()
	if b.Schedules[0].Brackets[1].AmountCents != 20*Euro || len(b.Schedules) != 2 {
		t.Fatal("modifying one DefaultTable changed another")
	}
}

func TestOwedUnorderedTable(t *testing.T) {
	d := DefaultTable()
	rev := Table{Schedules: []Schedule{d.Schedules[1], d.Schedules[0]}}
	for i := range rev.Schedules {
		s := rev.Schedules[i].Brackets
		for l, r := 0, len(s)-1; l < r; l, r = l+1, r-1 {
			s[l], s[r] = s[r], s[l]
		}
	}
	at := time.Date(2022, time.January, 1, 0, 0, 0, 0, time.UTC)
	if got, ok := rev.Owed(30_000_000, at); !ok || got != 35*Euro {
		t.Errorf("Owed on reversed table = %d, %v; want %d, true", got, ok, 35*Euro)
	}
}

func TestOwedEmptyTable(t *testing.T) {
	if got, ok := (Table{}).Owed(15_000_000, time.Now()); ok || got != 0 {
		t.Errorf("Owed on empty table = %d, %v; want 0, false", got, ok)
	}
}

func TestValidateErrors(t *testing.T) {
	d1 := time.Date(2021, time.January, 1, 0, 0, 0, 0, time.UTC)
	d2 := time.Date(2023, time.April, 1, 0, 0, 0, 0, time.UTC)
	ok := []Bracket{{0, 0}, {15_000_000, 2000}}
	tests := []struct {
		name  string
		table Table
		want  string
	}{
		{"no schedules", Table{}, "no schedules"},
		{"zero valid_from", Table{Schedules: []Schedule{{Brackets: ok}}}, "schedule 1 has no valid_from"},
		{"no brackets", Table{Schedules: []Schedule{{ValidFrom: d1}}}, "schedule 1 has no brackets"},
		{"schedules out of order", Table{Schedules: []Schedule{{ValidFrom: d2, Brackets: ok}, {ValidFrom: d1, Brackets: ok}}}, "schedule 2"},
		{"schedules with same start", Table{Schedules: []Schedule{{ValidFrom: d1, Brackets: ok}, {ValidFrom: d1, Brackets: ok}}}, "does not start after schedule 1"},
		{"brackets out of order", Table{Schedules: []Schedule{{ValidFrom: d1, Brackets: []Bracket{{15_000_000, 2000}, {0, 0}}}}}, "bracket 2"},
		{"duplicate bracket", Table{Schedules: []Schedule{{ValidFrom: d1, Brackets: []Bracket{{0, 0}, {0, 100}}}}}, "does not start above bracket 1"},
		{"negative amount", Table{Schedules: []Schedule{{ValidFrom: d1, Brackets: []Bracket{{0, -1}}}}}, "negative amount_cents"},
		{"negative from", Table{Schedules: []Schedule{{ValidFrom: d1, Brackets: []Bracket{{-100, 0}}}}}, "negative from_cents"},
		{"second schedule empty", Table{Schedules: []Schedule{{ValidFrom: d1, Brackets: ok}, {ValidFrom: d2}}}, "schedule 2 has no brackets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.table.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			if !errors.Is(err, ErrInvalidTable) {
				t.Errorf("error %v does not wrap ErrInvalidTable", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	in := DefaultTable()
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"schedules"`, `"valid_from":"2023-04-01T00:00:00+02:00"`, `"from_cents":15000000`, `"amount_cents":1800`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("JSON %s does not contain %s", data, key)
		}
	}
	var out Table
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if err := out.Validate(); err != nil {
		t.Fatal(err)
	}
	for i := range in.Schedules {
		if !out.Schedules[i].ValidFrom.Equal(in.Schedules[i].ValidFrom) || !reflect.DeepEqual(out.Schedules[i].Brackets, in.Schedules[i].Brackets) {
			t.Errorf("schedule %d changed in the round trip: %+v != %+v", i+1, out.Schedules[i], in.Schedules[i])
		}
	}
}
