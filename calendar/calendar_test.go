package calendar

import (
	"errors"
	"testing"
	"time"
)

// local returns the Europe/Rome instant written as "2006-01-02 15:04:05".
func local(s string) time.Time {
	t, err := time.ParseInLocation(time.DateTime, s, rome())
	if err != nil {
		panic(err)
	}
	return t
}

// utc returns the UTC instant written as "2006-01-02 15:04:05".
func utc(s string) time.Time {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustClosures(t *testing.T, ss ...string) []Closure {
	t.Helper()
	var cs []Closure
	for _, s := range ss {
		c, err := ParseClosure(s)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

func TestParseClosure(t *testing.T) {
	good := []struct {
		in, text string
		want     Closure
	}{
		{"2026-06-29", "2026-06-29", Closure{2026, time.June, 29}},
		{"06-29", "06-29", Closure{0, time.June, 29}},
		{" 12-07 ", "12-07", Closure{0, time.December, 7}},
		{"02-29", "02-29", Closure{0, time.February, 29}},
		{"2028-02-29", "2028-02-29", Closure{2028, time.February, 29}},
	}
	for _, tc := range good {
		got, err := ParseClosure(tc.in)
		if err != nil || got != tc.want || got.String() != tc.text {
			t.Errorf("ParseClosure(%q) = %v (%q), %v; want %v (%q)", tc.in, got, got.String(), err, tc.want, tc.text)
		}
		if again, err := ParseClosure(got.String()); err != nil || again != got {
			t.Errorf("ParseClosure(%q) = %v, %v; want %v", got.String(), again, err, got)
		}
	}
	for _, in := range []string{"", "29/06", "2026-6-29", "6-29", "2026-02-30", "2026-02-29", "13-01", "0000-06-29", "06-29-2026", "always"} {
		_, err := ParseClosure(in)
		if !errors.Is(err, errClosureSyntax) {
			t.Errorf("ParseClosure(%q) error = %v; want one saying what to write", in, err)
		}
	}
}

func TestNewLocation(t *testing.T) {
	if got := New(nil).Location().String(); got != "Europe/Rome" {
		t.Errorf("New(nil).Location() = %s", got)
	}
	if got := (*Calendar)(nil).Location().String(); got != "Europe/Rome" {
		t.Errorf("nil Calendar Location() = %s", got)
	}
	if got := New(time.UTC).Location(); got != time.UTC {
		t.Errorf("New(UTC).Location() = %s", got)
	}
}

func TestHoliday(t *testing.T) {
	c := New(nil, mustClosures(t, "06-29", "2026-12-24")...)
	tests := []struct {
		at   time.Time
		want string // "" means not a holiday
	}{
		{local("2026-04-06 10:00:00"), "Pasquetta"},
		{local("2021-04-05 10:00:00"), "Pasquetta"},
		{local("2026-04-05 10:00:00"), ""}, // Easter Sunday: a Sunday, not reported
		{local("2026-06-02 00:00:00"), "Festa della Repubblica"},
		{local("2026-10-04 10:00:00"), "San Francesco d'Assisi"},
		{local("2027-10-04 10:00:00"), "San Francesco d'Assisi"},
		{local("2025-10-04 10:00:00"), ""}, // before L. 151/2025 applies
		{local("2026-01-01 10:00:00"), "Capodanno"},
		{local("2026-01-06 10:00:00"), "Epifania"},
		{local("2026-04-25 10:00:00"), "Festa della Liberazione"},
		{local("2026-05-01 10:00:00"), "Festa del Lavoro"},
		{local("2026-08-15 10:00:00"), "Assunzione"},
		{local("2026-11-01 10:00:00"), "Tutti i santi"},
		{local("2026-12-08 10:00:00"), "Immacolata Concezione"},
		{local("2026-12-25 10:00:00"), "Natale"},
		{local("2026-12-26 23:59:59"), "Santo Stefano"},
		{local("2026-06-29 10:00:00"), "closure day 06-29"},
		{local("2027-06-29 10:00:00"), "closure day 06-29"},
		{local("2026-12-24 10:00:00"), "closure day 2026-12-24"},
		{local("2027-12-24 10:00:00"), ""},
		{local("2026-03-10 10:00:00"), ""},
		{local("2026-03-14 10:00:00"), ""},                     // a Saturday
		{utc("2026-06-01 22:30:00"), "Festa della Repubblica"}, // 00:30 on 2 June in Rome
		{utc("2026-06-02 22:30:00"), ""},                       // 00:30 on 3 June in Rome
		{utc("2026-12-31 23:30:00"), "Capodanno"},
	}
	for _, tc := range tests {
		name, ok := c.Holiday(tc.at)
		if name != tc.want || ok != (tc.want != "") {
			t.Errorf("Holiday(%v) = %q, %v; want %q", tc.at, name, ok, tc.want)
		}
	}
	if name, ok := (*Calendar)(nil).Holiday(local("2026-12-25 10:00:00")); ok {
		t.Errorf("nil Calendar Holiday(Christmas) = %q, true; want none", name)
	}
}

func TestWorking(t *testing.T) {
	patron := New(nil, mustClosures(t, "06-29")...)
	plain := New(nil)
	tests := []struct {
		cal  *Calendar
		at   time.Time
		want bool
	}{
		{plain, local("2026-03-09 10:00:00"), true},  // Monday
		{plain, local("2026-03-13 23:59:59"), true},  // Friday
		{plain, local("2026-03-14 10:00:00"), false}, // Saturday
		{plain, local("2026-03-15 10:00:00"), false}, // Sunday
		{plain, local("2026-04-06 10:00:00"), false}, // Easter Monday
		{plain, local("2027-10-04 10:00:00"), false}, // San Francesco on a Monday
		{plain, local("2025-10-03 10:00:00"), true},
		{plain, local("2026-06-29 10:00:00"), true},
		{patron, local("2026-06-29 10:00:00"), false},
		{plain, utc("2026-03-13 23:30:00"), false}, // Saturday 00:30 in Rome
		{nil, local("2026-04-06 10:00:00"), true},  // nil knows no holidays
		{nil, local("2026-04-04 10:00:00"), false},
	}
	for _, tc := range tests {
		if got := tc.cal.Working(tc.at); got != tc.want {
			t.Errorf("Working(%v) = %v; want %v", tc.at, got, tc.want)
		}
	}
}

func TestRollTerm(t *testing.T) {
	c := New(nil, mustClosures(t, "06-29", "2026-12-24")...)
	tests := []struct {
		name     string
		in, want time.Time
	}{
		{"working day unchanged", local("2026-03-11 10:00:00"), local("2026-03-11 10:00:00")},
		{"Friday+24h before Easter Monday", local("2026-04-03 12:00:00").Add(24 * time.Hour), local("2026-04-07 12:00:00")},
		{"Saturday 31 Dec, Sunday 1 Jan", local("2022-12-31 23:59:00"), local("2023-01-02 23:59:00")},
		{"1 Jan on Friday, then weekend", local("2027-01-01 09:00:00"), local("2027-01-04 09:00:00")},
		{"31 Dec on Thursday is working", local("2026-12-31 18:00:00"), local("2026-12-31 18:00:00")},
		{"closure, Christmas, weekend", local("2026-12-24 12:00:00"), local("2026-12-28 12:00:00")},
		{"Saturday before Epiphany Monday", local("2025-01-04 08:00:00"), local("2025-01-07 08:00:00")},
		{"patron day", local("2026-06-29 12:00:00"), local("2026-06-30 12:00:00")},
		{"Sunday 4 October 2026", local("2026-10-04 12:00:00"), local("2026-10-05 12:00:00")},
		{"UTC input, 2 June in Rome", utc("2026-06-01 22:30:00"), local("2026-06-03 00:30:00")},
		{"DST starts on Sunday", local("2026-03-28 02:30:00"), local("2026-03-30 02:30:00")},
		{"DST ends on Sunday", local("2026-10-24 12:00:00"), local("2026-10-26 12:00:00")},
		{"zero", time.Time{}, time.Time{}},
	}
	for _, tc := range tests {
		got := c.RollTerm(tc.in)
		if !got.Equal(tc.want) || (got != tc.in && got.Location() != rome()) {
			t.Errorf("%s: RollTerm(%v) = %v; want %v", tc.name, tc.in, got, tc.want)
		}
	}
	// Across a DST change the wall clock is kept, not the elapsed time.
	if d := c.RollTerm(local("2026-03-28 02:30:00")).Sub(local("2026-03-28 02:30:00")); d != 47*time.Hour {
		t.Errorf("roll over spring DST = %v; want 47h", d)
	}
	if d := c.RollTerm(local("2026-10-24 12:00:00")).Sub(local("2026-10-24 12:00:00")); d != 49*time.Hour {
		t.Errorf("roll over autumn DST = %v; want 49h", d)
	}
}
