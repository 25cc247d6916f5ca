// Package contribution computes the ANAC contribution (contributo ANAC, L. 266/2005
// art. 1 c.65 and c.67) that an economic operator (OE) owes to take part in a
// procedure, by the base amount of the lot.
//
// The amounts are configuration, not hard truth: ANAC sets them by delibera, the
// published figures come from secondary sources, and later years differ between
// sources. DefaultTable holds documented defaults; load a Table from configuration
// (the JSON and YAML field names are given by the struct tags) to override them.
//
// All money is in euro cents (int64); no floating point is used.
package contribution

import (
	"errors"
	"fmt"
	"time"
)

// Bracket is one row: lots with base amount >= FromCents (and below the next bracket)
// owe AmountCents.
type Bracket struct {
	FromCents   int64 `json:"from_cents" yaml:"from_cents"`
	AmountCents int64 `json:"amount_cents" yaml:"amount_cents"`
}

// Schedule is a table in force from a date: from the instant ValidFrom until the
// ValidFrom of the next schedule, or indefinitely if it is the last one.
type Schedule struct {
	ValidFrom time.Time `json:"valid_from" yaml:"valid_from"`
	Brackets  []Bracket `json:"brackets" yaml:"brackets"`
}

// Table is a set of schedules ordered by ValidFrom.
type Table struct {
	Schedules []Schedule `json:"schedules" yaml:"schedules"`
}

// ErrInvalidTable is wrapped by every error Table.Validate returns.
var ErrInvalidTable = errors.New("invalid contribution table")

// Euro is one euro in cents, to write amounts readably.
const Euro int64 = 100

// The instants at which the default schedules come into force: midnight, Rome time.
// Rome is on CET (UTC+1) on 1 January and on CEST (UTC+2) on 1 April; fixed zones
// are used so that no time-zone database is needed.
var (
	from2021 = time.Date(2021, time.January, 1, 0, 0, 0, 0, time.FixedZone("CET", 1*60*60))
	from2023 = time.Date(2023, time.April, 1, 0, 0, 0, 0, time.FixedZone("CEST", 2*60*60))
)

// DefaultTable returns the two tables of DOMAIN.md as documented defaults:
//
//   - in force from 2021-01-01 00:00 Europe/Rome until 2023-03-31 (Delibera ANAC
//     1197/2019 and 830/2021): €20, 35, 70, 80, 140, 200, 500;
//   - in force from 2023-04-01 00:00 Europe/Rome (Delibera ANAC 621/2022 and
//     610/2023): €18, 33, 77, 90, 165, 220, 560;
//
// for base amounts from €150,000, €300,000, €500,000, €800,000, €1,000,000,
// €5,000,000 and €20,000,000 respectively. Lots below €150,000 are exempt (amount 0).
// The last schedule has no end: figures for 2025 and later are not verified and
// should be configured if they differ. Each call returns a fresh Table that the caller
// may modify.
func DefaultTable() Table {
	return Table{Schedules: []Schedule{
		{ValidFrom: from2021, Brackets: brackets(20, 35, 70, 80, 140, 200, 500)},
		{ValidFrom: from2023, Brackets: brackets(18, 33, 77, 90, 165, 220, 560)},
	}}
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

// Validate reports an error if the table has no schedules, a schedule has a zero
// ValidFrom or no brackets, schedules are not in strictly increasing ValidFrom order,
// brackets are not in strictly increasing FromCents order, or a FromCents or
// AmountCents is negative. The error wraps ErrInvalidTable and names the schedule and
// bracket (counted from 1).
func (t Table) Validate() error {
	if len(t.Schedules) == 0 {
		return fmt.Errorf("%w: no schedules", ErrInvalidTable)
	}
	for i, s := range t.Schedules {
		if s.ValidFrom.IsZero() {
			return fmt.Errorf("%w: schedule %d has no valid_from", ErrInvalidTable, i+1)
		}
		if i > 0 && !s.ValidFrom.After(t.Schedules[i-1].ValidFrom) {
			return fmt.Errorf("%w: schedule %d (valid from %s) does not start after schedule %d (valid from %s)",
				ErrInvalidTable, i+1, s.ValidFrom.Format(time.RFC3339), i, t.Schedules[i-1].ValidFrom.Format(time.RFC3339))
		}
		if len(s.Brackets) == 0 {
			return fmt.Errorf("%w: schedule %d has no brackets", ErrInvalidTable, i+1)
		}
		for j, b := range s.Brackets {
			if b.FromCents < 0 {
				return fmt.Errorf("%w: schedule %d bracket %d has negative from_cents %d", ErrInvalidTable, i+1, j+1, b.FromCents)
			}
			if b.AmountCents < 0 {
				return fmt.Errorf("%w: schedule %d bracket %d has negative amount_cents %d", ErrInvalidTable, i+1, j+1, b.AmountCents)
			}
			if j > 0 && b.FromCents <= s.Brackets[j-1].FromCents {
				return fmt.Errorf("%w: schedule %d bracket %d (from_cents %d) does not start above bracket %d (from_cents %d)",
					ErrInvalidTable, i+1, j+1, b.FromCents, j, s.Brackets[j-1].FromCents)
			}
		}
	}
	return nil
}

// Owed returns the operator's contribution in euro cents for a lot of baseCents on
// date at, and false if no schedule covers that date (at is before the first
// ValidFrom).
//
// The schedule in force is the one with the latest ValidFrom not after at. at is
// compared as given, as an instant: it is not converted to Europe/Rome or truncated
// to a day. The default schedules begin at midnight Rome time, so a time in
// Europe/Rome gives the Italian calendar date's schedule, and so does a date-only
// value at midnight UTC (such as time.Parse("2006-01-02", ...)), because Rome is
// ahead of UTC; but 2023-03-31T23:00Z is already 1 April in Rome.
//
// The bracket is the one with the highest FromCents not above baseCents; a base below
// every bracket (for example a negative one) owes 0. Owed does not require the table
// to have passed Validate, but its answer is only meaningful if it has.
func (t Table) Owed(baseCents int64, at time.Time) (int64, bool) {
	var sched *Schedule
	for i := range t.Schedules {
		s := &t.Schedules[i]
		if s.ValidFrom.After(at) {
			continue
		}
		if sched == nil || s.ValidFrom.After(sched.ValidFrom) {
			sched = s
		}
	}
	if sched == nil {
		return 0, false
	}
	var row *Bracket
	for i := range sched.Brackets {
		b := &sched.Brackets[i]
		if b.FromCents > baseCents {
			continue
		}
		if row == nil || b.FromCents > row.FromCents {
			row = b
		}
	}
	if row == nil {
		return 0, true
	}
	return row.AmountCents, true
}
