// Package outage keeps the state of an ANAC service as the history of its
// down and up transitions, judged by the events' own times, so that events
// may arrive in any order and more than once.
package outage

import (
	"slices"
	"time"

	"github.com/promemoria/promemoria/events"
)

// MaxHistory bounds the transitions kept per service; the oldest go first.
const MaxHistory = 128

// Transition is one portal.down (Up false) or portal.up (Up true).
type Transition struct {
	At     time.Time `json:"at"`
	Up     bool      `json:"up"`
	Notice string    `json:"notice,omitempty"`
}

// Service is the state of one ANAC service.
type Service struct {
	Name string `json:"name"`
	// Transitions is sorted by At (a down before an up at the same instant).
	Transitions []Transition `json:"transitions,omitempty"`
}

func less(a, b Transition) int {
	if c := a.At.Compare(b.At); c != 0 {
		return c
	}
	switch {
	case a.Up == b.Up:
		return 0
	case !a.Up:
		return -1
	default:
		return 1
	}
}

// Apply records a transition and reports whether the state changed: a
// duplicate (same time, same direction) changes nothing.
func (s *Service) Apply(t Transition) bool {
	t.At = t.At.UTC()
	i, found := slices.BinarySearchFunc(s.Transitions, t, less)
	if found {
		return false
	}
	if len(s.Transitions) >= MaxHistory && i == 0 {
		return false // older than everything we keep: it cannot change the state
	}
	s.Transitions = slices.Insert(s.Transitions, i, t)
	if n := len(s.Transitions); n > MaxHistory {
		s.Transitions = slices.Clone(s.Transitions[n-MaxHistory:])
	}
	return true
}

// Up reports whether the service is up. A service never reported down is up.
func (s *Service) Up() bool {
	n := len(s.Transitions)
	return n == 0 || s.Transitions[n-1].Up
}

// UpSince returns when the current run of "up" began: the first portal.up
// after the latest portal.down. It is zero if the service is down or has no
// history.
func (s *Service) UpSince() time.Time {
	n := len(s.Transitions)
	if n == 0 || !s.Transitions[n-1].Up {
		return time.Time{}
	}
	i := n - 1
	for i > 0 && s.Transitions[i-1].Up {
		i--
	}
	return s.Transitions[i].At
}

// DownSince returns when the current outage began, or zero if the service
// is up.
func (s *Service) DownSince() time.Time {
	n := len(s.Transitions)
	if n == 0 || s.Transitions[n-1].Up {
		return time.Time{}
	}
	i := n - 1
	for i > 0 && !s.Transitions[i-1].Up {
		i--
	}
	return s.Transitions[i].At
}

// ReadyAt returns when gaps that depend on the service may be reminded: the
// start of the current "up" run plus settle. ok is false while the service
// is down. A service with no history is ready from the zero time.
func (s *Service) ReadyAt(settle time.Duration) (at time.Time, ok bool) {
	if !s.Up() {
		return time.Time{}, false
	}
	since := s.UpSince()
	if since.IsZero() {
		return time.Time{}, true
	}
	return since.Add(settle), true
}

// Outages returns the periods the service was down, oldest first; the last
// one has a zero To while the service is still down.
func (s *Service) Outages() []events.Outage {
	var out []events.Outage
	for i, t := range s.Transitions {
		if t.Up {
			if len(out) > 0 && out[len(out)-1].To.IsZero() {
				out[len(out)-1].To = t.At
			}
			continue
		}
		if i == 0 || s.Transitions[i-1].Up {
			out = append(out, events.Outage{From: t.At})
		}
	}
	return out
}

// LastOutage returns the most recent outage, if any.
func (s *Service) LastOutage() (events.Outage, bool) {
	o := s.Outages()
	if len(o) == 0 {
		return events.Outage{}, false
	}
	return o[len(o)-1], true
}

// Notice returns ANAC's announcement about the latest outage: the notice of
// the portal.up that ended it if it carried one, else that of a portal.down
// that began or confirmed it; "" if none did.
func (s *Service) Notice() string {
	n := len(s.Transitions)
	i := n - 1
	// The latest outage is the last run of downs and the ups right after it.
	for i >= 0 && s.Transitions[i].Up {
		i--
	}
	if i < 0 {
		return ""
	}
	start := i
	for start > 0 && !s.Transitions[start-1].Up {
		start--
	}
	for j := n - 1; j > i; j-- {
		if s.Transitions[j].Notice != "" {
			return s.Transitions[j].Notice
		}
	}
	for j := i; j >= start; j-- {
		if s.Transitions[j].Notice != "" {
			return s.Transitions[j].Notice
		}
	}
	return ""
}
