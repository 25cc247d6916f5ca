// Package contribution computes the ANAC contribution (contributo ANAC, L. 266/2005
// art. 1 c.65 and c.67) that an economic operator (OE) owes to take part in a
// procedure, by the base amount of the lot and the date the tender was published.
//
// The amounts are configuration, not hard truth: ANAC sets them by delibera, the
// published figures come from secondary sources, and later years differ between
// sources. DefaultSchedules holds documented defaults; configuration (the JSON and
// YAML field names are given by the struct tags) may replace them, and NewTable
// checks them before use.
//
// A schedule applies from a calendar date in Europe/Rome, the Italian calendar, and
// stays in force until the next schedule's date. The schedule that applies to a lot
// is the one in force on the day the tender was published, whenever the operator
// bids or pays.
//
// All money is in euro cents (int64); no floating point is used.
package contribution

import (
	"errors"
	"fmt"
	"time"

	"github.com/promemoria/promemoria/calendar"
)

// Bracket is one row: lots with base amount >= FromCents (and below the next bracket)
// owe AmountCents.
type Bracket struct {
	FromCents   int64 `json:"from_cents" yaml:"from_cents"`
	AmountCents int64 `json:"amount_cents" yaml:"amount_cents"`
}

// Schedule is a table of brackets in force from the Europe/Rome calendar date From
// (written "2006-01-02") until the From of the next schedule, or indefinitely if it is
// the last one. ID names it in reminders (for example "anac-2023").
type Schedule struct {
	ID       string    `json:"id" yaml:"id"`
	From     string    `json:"from" yaml:"from"`
	Brackets []Bracket `json:"brackets" yaml:"brackets"`
}

// Table is a set of schedules ordered by From. Build it with NewTable, which checks
// the schedules; Owed also works on a Table written as a literal, but its answer is
// only meaningful if the schedules would pass NewTable.
type Table struct {
	Schedules []Schedule
}

// Amount is what a bidder owes for one lot.
type Amount struct {
	// Cents is the contribution in euro cents; 0 if exempt or not Known.
	Cents int64
	// Table is the ID of the schedule used; empty if not Known.
	Table string
	// Known is false when no schedule covers the publication date: the amount could
	// not be determined, which is not the same as owing nothing.
	Known bool
	// Exempt is true when Known and the lot owes nothing (Cents == 0).
	Exempt bool
}

// ErrInvalidTable is wrapped by every error NewTable returns.
var ErrInvalidTable = errors.New("invalid contribution table")

// Euro is one euro in cents, to write amounts readably.
const Euro int64 = 100

// dateLayout is the layout of Schedule.From.
const dateLayout = time.DateOnly

// rome is the time zone of the Italian calendar in which schedule dates are read.
var rome = calendar.Rome()

// DefaultSchedules returns the two tables of DOMAIN.md as documented defaults:
//
//   - "anac-2021", from 2021-01-01 (Delibera ANAC 1197/2019 and 830/2021):
//     €20, 35, 70, 80, 140, 200, 500;
//   - "anac-2023", from 2023-04-01 (Delibera ANAC 621/2022 and 610/2023):
//     €18, 33, 77, 90, 165, 220, 560;
//
// for base amounts from €150,000, €300,000, €500,000, €800,000, €1,000,000,
// €5,000,000 and €20,000,000 respectively. Lots below €150,000 are exempt (a bracket
// from 0 with amount 0). Tenders published before 2021 are not covered. The last
// schedule has no end: figures for 2025 and later are not verified and should be
// configured if they differ. Each call returns fresh slices that the caller may
// modify.
func DefaultSchedules() []Schedule {
	return []Schedule{
		{ID: "anac-2021", From: "2021-01-01", Brackets: brackets(20, 35, 70, 80, 140, 200, 500)},
		{ID: "anac-2023", From: "2023-04-01", Brackets: brackets(18, 33, 77, 90, 165, 220, 560)},
	}
}

// DefaultTable returns the Table of DefaultSchedules, for callers that have no
// configuration.
func DefaultTable() Table {
	t, err := NewTable(DefaultSchedules())
	if err != nil {
		panic(fmt.Sprintf("contribution: default schedules: %v", err))
	}
	return t
}

// brackets builds the OE rows shared by both default schedules from the amounts in
// euro for each threshold, after an exempt row from 0.
func brackets(euros ...int64) []Bracket {
	thresholds := []int64{150_000, 300_000, 500_000, 800_000, 1_000_000, 5_000_000, 20_000_000}
	if len(euros) != len(thresholds) {
		panic("contribution: default brackets need one amount per threshold")
	}
	out := make([]Bracket, 0, len(thresholds)+1)
	out = append(out, Bracket{FromCents: 0, AmountCents: 0})
	for i, th := range thresholds {
		out = append(out, Bracket{FromCents: th * Euro, AmountCents: euros[i] * Euro})
	}
	return out
}

// NewTable checks schedules and returns them as a Table. It reports an error if
// there are no schedules; a schedule has an empty or repeated ID, a From that is not
// a date like 2023-04-01, or no brackets; two schedules have the same From (they
// overlap) or are not listed by increasing From; brackets do not start at
// from_cents 0 or are not in strictly increasing FromCents order; or a FromCents or
// AmountCents is negative. The error wraps ErrInvalidTable and names the schedule by
// position (counted from 1) and ID. The Table keeps its own copy of schedules.
func NewTable(schedules []Schedule) (Table, error) {
	if len(schedules) == 0 {
		return Table{}, fmt.Errorf("%w: no schedules: give at least one {id, from, brackets}", ErrInvalidTable)
	}
	t := Table{Schedules: make([]Schedule, len(schedules))}
	froms := make([]time.Time, len(schedules))
	seen := make(map[string]int, len(schedules))
	for i, s := range schedules {
		name := fmt.Sprintf("schedule %d %q", i+1, s.ID)
		if s.ID == "" {
			return Table{}, fmt.Errorf("%w: schedule %d has no id: give it a name like anac-2023", ErrInvalidTable, i+1)
		}
		if j, dup := seen[s.ID]; dup {
			return Table{}, fmt.Errorf("%w: %s has the same id as schedule %d: ids must be unique", ErrInvalidTable, name, j+1)
		}
		seen[s.ID] = i
		from, err := time.Parse(dateLayout, s.From)
		if err != nil {
			return Table{}, fmt.Errorf("%w: %s: from %q is not a date: write it like 2023-04-01", ErrInvalidTable, name, s.From)
		}
		if i > 0 {
			prev := schedules[i-1]
			switch p := froms[i-1]; {
			case from.Equal(p):
				return Table{}, fmt.Errorf("%w: %s and schedule %d %q overlap: both apply from %s; give each schedule its own from date",
					ErrInvalidTable, name, i, prev.ID, s.From)
			case from.Before(p):
				return Table{}, fmt.Errorf("%w: not sorted: %s (from %s) comes after schedule %d %q (from %s); list schedules by increasing from date",
					ErrInvalidTable, name, s.From, i, prev.ID, prev.From)
			}
		}
		if err := checkBrackets(s.Brackets); err != nil {
			return Table{}, fmt.Errorf("%w: %s: %w", ErrInvalidTable, name, err)
		}
		froms[i] = from
		t.Schedules[i] = Schedule{ID: s.ID, From: s.From, Brackets: append([]Bracket(nil), s.Brackets...)}
	}
	return t, nil
}

// checkBrackets reports what is wrong with one schedule's brackets, naming the
// bracket counted from 1.
func checkBrackets(bs []Bracket) error {
	if len(bs) == 0 {
		return errors.New("no brackets: give at least {from_cents: 0, amount_cents: 0}")
	}
	for j, b := range bs {
		switch {
		case b.FromCents < 0:
			return fmt.Errorf("bracket %d has negative from_cents %d", j+1, b.FromCents)
		case b.AmountCents < 0:
			return fmt.Errorf("bracket %d has negative amount_cents %d", j+1, b.AmountCents)
		case j == 0 && b.FromCents != 0:
			return fmt.Errorf("bracket 1 starts at from_cents %d: the first bracket must start at 0 (amount_cents 0 for exempt lots)", b.FromCents)
		case j > 0 && b.FromCents <= bs[j-1].FromCents:
			return fmt.Errorf("bracket %d (from_cents %d) does not start above bracket %d (from_cents %d): list brackets by increasing from_cents",
				j+1, b.FromCents, j, bs[j-1].FromCents)
		}
	}
	return nil
}

// Owed returns what a bidder owes for a lot of baseCents in a tender published at
// publishedAt.
//
// The schedule is the latest one whose From is not after publishedAt's calendar date
// in Europe/Rome: 2023-03-31T22:00:00Z is 1 April 2023 in Rome (UTC+2) and takes a
// schedule from 2023-04-01. If no schedule starts on or before that date, or
// publishedAt is zero, the Amount is not Known. The bracket is the one with the
// highest FromCents not above baseCents; a base below every bracket (a negative one)
// owes nothing.
func (t Table) Owed(baseCents int64, publishedAt time.Time) Amount {
	if publishedAt.IsZero() {
		return Amount{}
	}
	y, m, d := publishedAt.In(rome).Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	sched := -1
	var start time.Time
	for i, s := range t.Schedules {
		from, err := time.Parse(dateLayout, s.From)
		if err != nil || from.After(day) {
			continue
		}
		if sched < 0 || from.After(start) {
			sched, start = i, from
		}
	}
	if sched < 0 {
		return Amount{}
	}
	s := t.Schedules[sched]
	row := -1
	for i, b := range s.Brackets {
		if b.FromCents <= baseCents && (row < 0 || b.FromCents > s.Brackets[row].FromCents) {
			row = i
		}
	}
	a := Amount{Table: s.ID, Known: true}
	if row >= 0 {
		a.Cents = s.Brackets[row].AmountCents
	}
	a.Exempt = a.Cents == 0
	return a
}
