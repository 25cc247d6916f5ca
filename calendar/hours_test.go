package calendar

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func mustHours(t *testing.T, s string) Hours {
	t.Helper()
	h, err := ParseHours(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestParseHours(t *testing.T) {
	good := []struct{ in, want string }{
		{"always", "always"},
		{" Always ", "always"},
		{"Mon-Fri 09:00-18:00", "Mon-Fri 09:00-18:00"},
		{"Mon-Sat 08:30-13:00", "Mon-Sat 08:30-13:00"},
		{"Mon-Fri 09:00-13:00,14:00-18:00", "Mon-Fri 09:00-13:00,14:00-18:00"},
		{"Mon,Wed,Fri 09:00-12:00", "Mon,Wed,Fri 09:00-12:00"},
		{"mon-fri 14:00-18:00,09:00-13:00", "Mon-Fri 09:00-13:00,14:00-18:00"},
		{"Mon, Wed  09:00-12:00, 14:00-16:00", "Mon,Wed 09:00-12:00,14:00-16:00"},
		{"Mon-Wed,Fri 09:00-18:00", "Mon-Wed,Fri 09:00-18:00"},
		{"Mon-Tue,Thu-Fri 09:00-18:00", "Mon,Tue,Thu,Fri 09:00-18:00"},
		{"Sat,Sun 00:00-24:00", "Sat,Sun 00:00-24:00"},
		{"Sun-Sun 09:00-09:01", "Sun 09:00-09:01"},
	}
	for _, tc := range good {
		h, err := ParseHours(tc.in)
		if err != nil || h.String() != tc.want {
			t.Errorf("ParseHours(%q) = %q, %v; want %q", tc.in, h, err, tc.want)
			continue
		}
		if again, err := ParseHours(h.String()); err != nil || again.String() != h.String() || again.Always() != h.Always() {
			t.Errorf("ParseHours(%q) = %q, %v; want it back", h.String(), again, err)
		}
	}
	if h := (Hours{}); !h.Always() || h.String() != "always" {
		t.Errorf("zero Hours: Always() = %v, String() = %q", h.Always(), h)
	}
	if h := mustHours(t, "Mon-Fri 09:00-18:00"); h.Always() {
		t.Error(`"Mon-Fri 09:00-18:00".Always() = true`)
	}

	bad := []string{
		"", "Mon-Fri", "09:00-18:00", "Mon-Fri 9-18", "Mon-Fri 9:00-18:00", "Lun-Ven 09:00-18:00",
		"Fri-Mon 09:00-18:00", "Mon-Fri 18:00-09:00", "Mon-Fri 09:00-09:00", "Mon-Fri 09:00-13:00,12:00-18:00",
		"Mon-Fri 24:00-24:00", "Mon-Fri 09:00-24:01", "Mon-Fri 09:60-10:00", "Mon-Fri 09:00-18:00,",
		"Mon,,Fri 09:00-18:00", "always Mon-Fri", "Mon-Fri 09:00", "Mon-Fri +9:00-18:00",
	}
	for _, in := range bad {
		_, err := ParseHours(in)
		if !errors.Is(err, errHoursSyntax) || !strings.HasPrefix(err.Error(), "office hours ") {
			t.Errorf("ParseHours(%q) error = %v; want one saying what to write", in, err)
		}
	}
	const want = `office hours "Mon-Fri 9-18": write them like "Mon-Fri 09:00-18:00" or "always"`
	if _, err := ParseHours("Mon-Fri 9-18"); err == nil || err.Error() != want {
		t.Errorf("ParseHours error = %v; want %s", err, want)
	}
}

func TestOfficeOpen(t *testing.T) {
	cal := New(nil, mustClosures(t, "06-29")...)
	office := Office{Cal: cal, Hours: mustHours(t, "Mon-Fri 09:00-18:00")}
	split := Office{Cal: cal, Hours: mustHours(t, "Mon-Fri 09:00-13:00,14:00-18:00")}
	tests := []struct {
		name string
		o    Office
		at   time.Time
		want bool
	}{
		{"exactly 09:00", office, local("2026-03-10 09:00:00"), true},
		{"08:59:59", office, local("2026-03-10 08:59:59"), false},
		{"17:59:59", office, local("2026-03-10 17:59:59"), true},
		{"exactly 18:00", office, local("2026-03-10 18:00:00"), false},
		{"Saturday", office, local("2026-03-14 10:00:00"), false},
		{"Easter Monday", office, local("2026-04-06 10:00:00"), false},
		{"patron day", office, local("2026-06-29 10:00:00"), false},
		{"lunch break", split, local("2026-03-10 13:30:00"), false},
		{"after lunch", split, local("2026-03-10 14:00:00"), true},
		{"UTC 08:00 is 09:00 CET", office, utc("2026-03-10 08:00:00"), true},
		{"UTC 07:59 is 08:59 CET", office, utc("2026-03-10 07:59:00"), false},
		{"UTC 07:00 is 09:00 CEST", office, utc("2026-03-30 07:00:00"), true},
		{"UTC 06:30 is 08:30 CEST", office, utc("2026-03-30 06:30:00"), false},
		{"UTC 16:00 is 18:00 CEST", office, utc("2026-03-30 16:00:00"), false},
		{"UTC 16:30 is 17:30 CET", office, utc("2026-10-26 16:30:00"), true},
		{"Mon-Sat opens Saturday", Office{Cal: cal, Hours: mustHours(t, "Mon-Sat 08:30-13:00")}, local("2026-03-14 08:30:00"), true},
		{"Mon,Wed,Fri closed Tuesday", Office{Cal: cal, Hours: mustHours(t, "Mon,Wed,Fri 09:00-12:00")}, local("2026-03-10 10:00:00"), false},
		{"always on a holiday at night", Office{Cal: cal}, local("2026-04-06 03:00:00"), true},
		{"zero Office", Office{}, local("2026-12-25 03:00:00"), true},
		{"nil Cal knows no holidays", Office{Hours: office.Hours}, local("2026-04-06 10:00:00"), true},
		{"nil Cal is Europe/Rome", Office{Hours: office.Hours}, utc("2026-03-10 08:00:00"), true},
	}
	for _, tc := range tests {
		if got := tc.o.Open(tc.at); got != tc.want {
			t.Errorf("%s: Open(%v) = %v; want %v", tc.name, tc.at, got, tc.want)
		}
	}
}

func TestOfficeNext(t *testing.T) {
	cal := New(nil, mustClosures(t, "06-29")...)
	office := Office{Cal: cal, Hours: mustHours(t, "Mon-Fri 09:00-18:00")}
	split := Office{Cal: cal, Hours: mustHours(t, "Mon-Fri 09:00-13:00,14:00-18:00")}
	tests := []struct {
		name     string
		o        Office
		in, want time.Time
	}{
		{"open: unchanged", office, local("2026-03-10 10:00:00"), local("2026-03-10 10:00:00")},
		{"Tuesday 02:05", office, local("2026-03-10 02:05:00"), local("2026-03-10 09:00:00")},
		{"Friday 18:00", office, local("2026-03-13 18:00:00"), local("2026-03-16 09:00:00")},
		{"Saturday", office, local("2026-03-14 11:00:00"), local("2026-03-16 09:00:00")},
		{"before Easter Monday", office, local("2026-04-03 18:00:00"), local("2026-04-07 09:00:00")},
		{"patron day", office, local("2026-06-29 08:00:00"), local("2026-06-30 09:00:00")},
		{"lunch break", split, local("2026-03-10 13:30:00"), local("2026-03-10 14:00:00")},
		{"UTC evening", office, utc("2026-03-10 17:30:00"), local("2026-03-11 09:00:00")},
		{"over spring DST", office, local("2026-03-28 10:00:00"), utc("2026-03-30 07:00:00")},
		{"over autumn DST", office, local("2026-10-24 10:00:00"), utc("2026-10-26 08:00:00")},
		{"always, even on a holiday", Office{Cal: cal}, local("2026-04-06 03:00:00"), local("2026-04-06 03:00:00")},
		{"nil Cal: Monday after weekend", Office{Hours: office.Hours}, local("2026-04-04 10:00:00"), local("2026-04-06 09:00:00")},
	}
	for _, tc := range tests {
		got := tc.o.Next(tc.in)
		if !got.Equal(tc.want) {
			t.Errorf("%s: Next(%v) = %v; want %v", tc.name, tc.in, got, tc.want)
		}
		if !tc.o.Open(got) {
			t.Errorf("%s: Next(%v) = %v is not open", tc.name, tc.in, got)
		}
	}
}

func TestOfficeEscalationAt(t *testing.T) {
	cal := New(nil)
	hours := mustHours(t, "Mon-Fri 09:00-18:00")
	office := Office{Cal: cal, Hours: hours}
	closed1June := Office{Cal: New(nil, mustClosures(t, "2026-06-01")...), Hours: hours}
	tests := []struct {
		name     string
		o        Office
		deadline time.Time
		before   time.Duration
		want     time.Time
	}{
		{"Wed 12:00 - 48h", office, local("2026-03-11 12:00:00"), 48 * time.Hour, local("2026-03-09 09:00:00")},
		{"Mon 12:00 - 48h skips weekend", office, local("2026-03-16 12:00:00"), 48 * time.Hour, local("2026-03-13 09:00:00")},
		{"Wed 3 June - 48h", office, local("2026-06-03 12:00:00"), 48 * time.Hour, local("2026-06-01 09:00:00")},
		{"Wed 3 June - 48h, 1 June closed", closed1June, local("2026-06-03 12:00:00"), 48 * time.Hour, local("2026-05-29 09:00:00")},
		{"Tue after Easter - 24h", office, local("2026-04-07 12:00:00"), 24 * time.Hour, local("2026-04-03 09:00:00")},
		{"target exactly at opening", office, local("2026-03-11 09:00:00"), 48 * time.Hour, local("2026-03-09 09:00:00")},
		{"target before opening", office, local("2026-03-11 08:59:00"), 48 * time.Hour, local("2026-03-06 09:00:00")},
		{"target after closing", office, local("2026-03-11 20:00:00"), 48 * time.Hour, local("2026-03-09 09:00:00")},
		{"over spring DST", office, local("2026-03-31 12:00:00"), 48 * time.Hour, local("2026-03-27 09:00:00")},
		{"UTC deadline", office, utc("2026-03-11 11:00:00"), 48 * time.Hour, local("2026-03-09 09:00:00")},
		{"split hours: first range", Office{Cal: cal, Hours: mustHours(t, "Mon-Fri 09:00-13:00,14:00-18:00")}, local("2026-03-11 16:00:00"), 48 * time.Hour, local("2026-03-09 09:00:00")},
		{"Mon-Sat: Saturday counts", Office{Cal: cal, Hours: mustHours(t, "Mon-Sat 08:30-13:00")}, local("2026-03-16 12:00:00"), 48 * time.Hour, local("2026-03-14 08:30:00")},
		{"always: exact", Office{Cal: cal}, local("2026-03-16 12:00:00"), 48 * time.Hour, local("2026-03-14 12:00:00")},
		{"zero Office: exact", Office{}, local("2026-03-16 12:00:00"), 90 * time.Minute, local("2026-03-16 10:30:00")},
		{"zero deadline", office, time.Time{}, 48 * time.Hour, time.Time{}},
		{"zero deadline, always", Office{}, time.Time{}, 48 * time.Hour, time.Time{}},
	}
	for _, tc := range tests {
		got := tc.o.EscalationAt(tc.deadline, tc.before)
		if !got.Equal(tc.want) || got.IsZero() != tc.want.IsZero() {
			t.Errorf("%s: EscalationAt(%v, %v) = %v; want %v", tc.name, tc.deadline, tc.before, got, tc.want)
		}
	}
}
