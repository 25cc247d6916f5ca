// Package calendar knows which days an Italian office works and when it is
// open: national holidays, configured closure days, the rollover of terms
// that end on a non-working day (art. 2963 c.c., art. 155 c.p.c.) and the
// office hours during which messages go out. It does no I/O.
package calendar

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // Europe/Rome must load even where the system has no zoneinfo.

	"github.com/rickar/cal/v2"
	"github.com/rickar/cal/v2/it"
)

// maxScan bounds every day-by-day search (ten years), so that a calendar
// where every weekday is closed cannot loop forever.
const maxScan = 3660

// sanFrancesco is 4 October, a national holiday from 2026 (L. 151/2025),
// which github.com/rickar/cal/v2/it does not know yet.
var sanFrancesco = &cal.Holiday{
	Name:      "San Francesco d'Assisi",
	Type:      cal.ObservancePublic,
	StartYear: 2026,
	Month:     time.October,
	Day:       4,
	Func:      cal.CalcDayOfMonth,
}

// national lists the Italian national holidays; Sundays are left to the weekday checks.
var national = append(slices.Clone(it.Holidays), sanFrancesco)

// Rome returns the Europe/Rome zone: the zone of Italian dates and terms,
// the default of New and of a nil Calendar. The zone database is embedded,
// so it never fails.
func Rome() *time.Location { return rome() }

var rome = sync.OnceValue(func() *time.Location {
	loc, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic(fmt.Errorf("calendar: time/tzdata is embedded, yet: %w", err))
	}
	return loc
})

// errClosureSyntax says how to write a closure day.
var errClosureSyntax = errors.New(`write a real date like "2026-06-29" or a yearly day like "06-29"`)

// Closure is a configured closure day: a date (Year != 0) or a yearly MM-DD (Year == 0), e.g. a patron saint.
type Closure struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseClosure parses a closure day written as a date, "2026-06-29", or as
// a day repeated every year, "06-29".
func ParseClosure(s string) (Closure, error) {
	text := strings.TrimSpace(s)
	layout := "01-02"
	if len(text) > len(layout) {
		layout = time.DateOnly
	}
	d, err := time.Parse(layout, text)
	if err != nil || (layout == time.DateOnly && d.Year() == 0) {
		return Closure{}, fmt.Errorf("closure day %q: %w", s, errClosureSyntax)
	}
	if layout != time.DateOnly {
		return Closure{Month: d.Month(), Day: d.Day()}, nil
	}
	return Closure{Year: d.Year(), Month: d.Month(), Day: d.Day()}, nil
}

// String returns the closure in the form ParseClosure reads: "2026-06-29" or "06-29".
func (c Closure) String() string {
	if c.Year == 0 {
		return fmt.Sprintf("%02d-%02d", int(c.Month), c.Day)
	}
	return fmt.Sprintf("%04d-%02d-%02d", c.Year, int(c.Month), c.Day)
}

// matches reports whether the closure falls on the given date.
func (c Closure) matches(y int, m time.Month, d int) bool {
	return (c.Year == 0 || c.Year == y) && c.Month == m && c.Day == d
}

// Calendar knows which days are closed, in one time zone.
// A nil *Calendar is usable: it is in Europe/Rome and knows no holidays.
type Calendar struct {
	loc      *time.Location
	closures []Closure
}

// New returns a calendar of the Italian national holidays plus the given
// closure days, in loc; a nil loc means Europe/Rome.
func New(loc *time.Location, closures ...Closure) *Calendar {
	if loc == nil {
		loc = rome()
	}
	return &Calendar{loc: loc, closures: slices.Clone(closures)}
}

// Location returns the calendar's time zone.
func (c *Calendar) Location() *time.Location {
	if c == nil {
		return rome()
	}
	return c.loc
}

// Holiday reports whether t's date (in the calendar's zone) is a national
// holiday (Easter Monday, 2 June, 4 October from 2026, 1 Jan, 6 Jan, 25 Apr,
// 1 May, 15 Aug, 1 Nov, 8 Dec, 25 Dec, 26 Dec) or a configured closure day,
// with its name; Saturdays and Sundays are not reported here.
// Closure days are named "closure day " plus the closure, e.g. "closure day 06-29".
func (c *Calendar) Holiday(t time.Time) (name string, ok bool) {
	if c == nil {
		return "", false
	}
	y, m, d := t.In(c.loc).Date()
	for _, h := range national {
		if a, _ := h.Calc(y); !a.IsZero() && a.Year() == y && a.Month() == m && a.Day() == d {
			return h.Name, true
		}
	}
	for _, cl := range c.closures {
		if cl.matches(y, m, d) {
			return "closure day " + cl.String(), true
		}
	}
	return "", false
}

// Working reports whether t's date is Monday–Friday and not a holiday or closure day.
func (c *Calendar) Working(t time.Time) bool {
	switch t.In(c.Location()).Weekday() {
	case time.Saturday, time.Sunday:
		return false
	}
	_, holiday := c.Holiday(t)
	return !holiday
}

// RollTerm applies art. 2963 c.c. and art. 155 c.p.c.: if t's date is a
// Saturday, Sunday, holiday or closure day, it returns the same wall-clock
// time, in the calendar's zone, of the next working day; otherwise it
// returns t. The zero time is returned unchanged.
func (c *Calendar) RollTerm(t time.Time) time.Time {
	if t.IsZero() || c.Working(t) {
		return t
	}
	loc := c.Location()
	l := t.In(loc)
	y, m, d := l.Date()
	for i := 1; i <= maxScan; i++ {
		if c.Working(time.Date(y, m, d+i, 12, 0, 0, 0, loc)) {
			return time.Date(y, m, d+i, l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), loc)
		}
	}
	return t
}
