package calendar

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// errHoursSyntax says how to write office hours.
var errHoursSyntax = errors.New(`write them like "Mon-Fri 09:00-18:00" or "always"`)

// dayNames are the accepted day names, Monday first.
var dayNames = [7]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}

// Hours are office hours: the days of the week and the time ranges during which messages go out.
// The zero Hours means "always".
type Hours struct {
	days   uint8  // bit w is set when time.Weekday(w) is an office day
	ranges []span // sorted, not overlapping; empty means always
}

// span is a range of wall-clock time, from midnight, with minute precision.
type span struct{ from, to time.Duration }

// ParseHours parses "always" (any time, any day: the zero Hours is also
// "always"), or days and time ranges such as "Mon-Fri 09:00-18:00",
// "Mon-Sat 08:30-13:00", "Mon-Fri 09:00-13:00,14:00-18:00" or
// "Mon,Wed,Fri 09:00-12:00". Day names are case-insensitive, ranges may be
// given in any order and "24:00" may end a range.
func ParseHours(s string) (Hours, error) {
	h, err := parseHours(s)
	if err != nil {
		return Hours{}, fmt.Errorf("office hours %q: %w", s, err)
	}
	return h, nil
}

// parseHours does the work of ParseHours; its errors lack the input.
func parseHours(s string) (Hours, error) {
	f := strings.Fields(s)
	if len(f) == 1 && strings.EqualFold(f[0], "always") {
		return Hours{}, nil
	}
	i := slices.IndexFunc(f, func(w string) bool { return w[0] >= '0' && w[0] <= '9' })
	if i < 1 {
		return Hours{}, errHoursSyntax
	}
	var h Hours
	for item := range strings.SplitSeq(strings.Join(f[:i], ""), ",") {
		first, last, isRange := strings.Cut(item, "-")
		if !isRange {
			last = first
		}
		a, b := dayIndex(first), dayIndex(last)
		if a < 0 || b < a {
			return Hours{}, errHoursSyntax
		}
		for d := a; d <= b; d++ {
			h.days |= 1 << ((d + 1) % 7)
		}
	}
	for item := range strings.SplitSeq(strings.Join(f[i:], ""), ",") {
		from, to, _ := strings.Cut(item, "-")
		a, b := clock(from), clock(to)
		if a < 0 || b < 0 || a == 24*time.Hour {
			return Hours{}, errHoursSyntax
		}
		if b <= a {
			return Hours{}, fmt.Errorf("%s must end after it starts; %w", item, errHoursSyntax)
		}
		h.ranges = append(h.ranges, span{a, b})
	}
	slices.SortFunc(h.ranges, func(x, y span) int { return cmp.Compare(x.from, y.from) })
	for k := 1; k < len(h.ranges); k++ {
		if h.ranges[k].from < h.ranges[k-1].to {
			return Hours{}, fmt.Errorf("time ranges must not overlap; %w", errHoursSyntax)
		}
	}
	return h, nil
}

// dayIndex returns the position of a day name from Monday = 0, or -1.
func dayIndex(name string) int {
	return slices.IndexFunc(dayNames[:], func(n string) bool { return strings.EqualFold(n, name) })
}

// clock parses "HH:MM", 00:00 to 24:00, or returns -1.
func clock(s string) time.Duration {
	if len(s) != 5 || s[2] != ':' {
		return -1
	}
	var n [4]int
	for k, c := range []byte{s[0], s[1], s[3], s[4]} {
		if c < '0' || c > '9' {
			return -1
		}
		n[k] = int(c - '0')
	}
	hh, mm := n[0]*10+n[1], n[2]*10+n[3]
	if mm > 59 || hh > 24 || (hh == 24 && mm > 0) {
		return -1
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute
}

// Always reports whether messages may go out at any time of any day.
func (h Hours) Always() bool { return len(h.ranges) == 0 }

// String returns the canonical text of the hours, which ParseHours reads
// back: "always" or, e.g., "Mon-Fri 09:00-13:00,14:00-18:00".
func (h Hours) String() string {
	if h.Always() {
		return "always"
	}
	var days []string
	for a := 0; a < 7; a++ {
		if !h.hasDay(a) {
			continue
		}
		b := a
		for b+1 < 7 && h.hasDay(b+1) {
			b++
		}
		if b-a >= 2 {
			days = append(days, dayNames[a]+"-"+dayNames[b])
		} else {
			days = append(days, dayNames[a:b+1]...)
		}
		a = b
	}
	ranges := make([]string, len(h.ranges))
	for k, r := range h.ranges {
		ranges[k] = fmt.Sprintf("%02d:%02d-%02d:%02d",
			int(r.from/time.Hour), int(r.from%time.Hour/time.Minute),
			int(r.to/time.Hour), int(r.to%time.Hour/time.Minute))
	}
	return strings.Join(days, ",") + " " + strings.Join(ranges, ",")
}

// hasDay reports whether the day at position d from Monday = 0 is an office day.
func (h Hours) hasDay(d int) bool { return h.days&(1<<((d+1)%7)) != 0 }

// Office combines a calendar and office hours. The zero Office (nil Cal, zero
// Hours) is always open and knows no holidays. The hours' days decide on
// which weekdays the office opens ("Mon-Sat" opens on Saturdays); Cal decides
// the holidays and closure days, and its zone is the zone of the hours. A nil
// Cal means Europe/Rome without holidays.
type Office struct {
	Cal   *Calendar
	Hours Hours
}

// Open reports whether messages may go out at t: always with Always hours,
// holidays included; otherwise when t falls in one of the time ranges, on
// one of the hours' days that is not a holiday or closure day.
func (o Office) Open(t time.Time) bool {
	if o.Hours.Always() {
		return true
	}
	l := t.In(o.Cal.Location())
	if !o.openDay(l) {
		return false
	}
	hh, mm, ss := l.Clock()
	now := time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute +
		time.Duration(ss)*time.Second + time.Duration(l.Nanosecond())
	for _, r := range o.Hours.ranges {
		if r.from <= now && now < r.to {
			return true
		}
	}
	return false
}

// Next returns t if Open(t), otherwise the next opening instant after t:
// the start of the next time range on an office day. With Always hours it
// returns t unchanged.
func (o Office) Next(t time.Time) time.Time {
	if o.Open(t) {
		return t
	}
	loc := o.Cal.Location()
	y, m, d := t.In(loc).Date()
	for i := range maxScan {
		if !o.openDay(time.Date(y, m, d+i, 12, 0, 0, 0, loc)) {
			continue
		}
		for _, r := range o.Hours.ranges {
			if start := wallClock(y, m, d+i, r.from, loc); start.After(t) {
				return start
			}
		}
	}
	return t
}

// EscalationAt returns when an escalation for a deadline goes: with Always
// hours, exactly deadline-before; otherwise the opening (start of the first
// time range) of the last office day whose opening is at or before
// deadline-before. For a zero deadline it returns the zero time.
func (o Office) EscalationAt(deadline time.Time, before time.Duration) time.Time {
	if deadline.IsZero() {
		return time.Time{}
	}
	target := deadline.Add(-before)
	if o.Hours.Always() {
		return target
	}
	loc := o.Cal.Location()
	y, m, d := target.In(loc).Date()
	for i := range maxScan {
		if !o.openDay(time.Date(y, m, d-i, 12, 0, 0, 0, loc)) {
			continue
		}
		if open := wallClock(y, m, d-i, o.Hours.ranges[0].from, loc); !open.After(target) {
			return open
		}
	}
	return target
}

// openDay reports whether t's date is one of the hours' days and not a holiday or closure day.
func (o Office) openDay(t time.Time) bool {
	if o.Hours.days&(1<<t.In(o.Cal.Location()).Weekday()) == 0 {
		return false
	}
	_, holiday := o.Cal.Holiday(t)
	return !holiday
}

// wallClock returns the instant the clock in loc shows tod on the given date.
func wallClock(y int, m time.Month, d int, tod time.Duration, loc *time.Location) time.Time {
	return time.Date(y, m, d, int(tod/time.Hour), int(tod%time.Hour/time.Minute), 0, 0, loc)
}
