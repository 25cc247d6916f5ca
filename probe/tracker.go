package probe

import (
	"strconv"
	"strings"
	"time"
)

// Transition is a change of a service's state the probe publishes.
type Transition struct {
	Service string
	// Up is the new state: true for portal.up, false for portal.down.
	Up bool
	// At is the time of the first check of the run that caused it.
	At time.Time
	// Notice says what the checks saw: "HTTP 503 on 3 checks", "timeout
	// after 5s on 3 checks", "up again: HTTP 200 on 2 checks".
	Notice string
}

// Tracker turns check results into transitions: down after Failures
// consecutive failures, up after Successes consecutive successes. It starts
// from the last published state of each service (unknown = up, as a service
// never reported down is up); a run shorter than the threshold produces
// nothing. Pure, no I/O; not safe for concurrent use.
type Tracker struct {
	failures, successes int
	services            map[string]*serviceRun
}

// serviceRun is a service's published state and the run of results that
// contradict it.
type serviceRun struct {
	up    bool
	first time.Time
	// seen counts the results of the run by what they saw, in order of
	// first appearance.
	seen []seenCount
	n    int
}

type seenCount struct {
	what string
	n    int
}

// NewTracker returns a Tracker with the given thresholds (at least 1) and
// the last published state of each service (service -> up).
func NewTracker(failures, successes int, published map[string]bool) *Tracker {
	t := &Tracker{failures: max(failures, 1), successes: max(successes, 1), services: map[string]*serviceRun{}}
	for svc, up := range published {
		t.services[svc] = &serviceRun{up: up}
	}
	return t
}

// Up reports the last published (or transitioned to) state of service.
func (t *Tracker) Up(service string) bool {
	if st, ok := t.services[service]; ok {
		return st.up
	}
	return true
}

// Observe takes the next result of r.Service and returns the transition it
// completes, if any. The tracker then assumes the transition is published.
func (t *Tracker) Observe(r Result) (Transition, bool) {
	st, ok := t.services[r.Service]
	if !ok {
		st = &serviceRun{up: true}
		t.services[r.Service] = st
	}
	if r.OK == st.up {
		st.n, st.seen = 0, st.seen[:0]
		return Transition{}, false
	}
	if st.n == 0 {
		st.first = r.At
	}
	st.n++
	what := r.Problem
	if r.OK {
		what = "HTTP " + strconv.Itoa(r.Status)
	}
	if what == "" {
		what = "failed"
	}
	if i := indexSeen(st.seen, what); i >= 0 {
		st.seen[i].n++
	} else {
		st.seen = append(st.seen, seenCount{what, 1})
	}
	need := t.failures
	if !st.up {
		need = t.successes
	}
	if st.n < need {
		return Transition{}, false
	}
	tr := Transition{Service: r.Service, Up: !st.up, At: st.first, Notice: notice(!st.up, st.seen)}
	st.up, st.n, st.seen = !st.up, 0, nil
	return tr, true
}

func indexSeen(seen []seenCount, what string) int {
	for i, s := range seen {
		if s.what == what {
			return i
		}
	}
	return -1
}

// notice writes "HTTP 503 on 3 checks", "HTTP 503 on 2 checks, timeout
// after 5s on 1 check", or "up again: HTTP 200 on 2 checks".
func notice(up bool, seen []seenCount) string {
	var b strings.Builder
	if up {
		b.WriteString("up again: ")
	}
	for i, s := range seen {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.what)
		b.WriteString(" on ")
		b.WriteString(strconv.Itoa(s.n))
		if s.n == 1 {
			b.WriteString(" check")
		} else {
			b.WriteString(" checks")
		}
	}
	return shorten(b.String(), maxNotice)
}

// maxNotice is the longest notice the contract accepts, in bytes
// (events/validate.go).
const maxNotice = 4096
