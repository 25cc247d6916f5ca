package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/gap"
)

// Timers are JetStream message schedules: a message on
// _promemoria.<prefix>.sched.<key> with "Nats-Schedule: @at <time>" makes
// the server publish, at that time, a message on
// _promemoria.<prefix>.fire.<key>, which the timer consumer receives. A new
// schedule for a key replaces the old one. The schedule lives in a stream,
// so it survives restarts.
//
// Their number does not grow with the gaps. A gap's next look (its
// repeat or its escalation) is rounded up to a bucket of TimerResolution,
// and one timer per service and bucket wakes every gap of that service
// due by then: the gaps a restoration reminded together fall due together.
// The other timers are the restoration passes of a service and the advice
// sweep.

// timerKind says what a timer is for.
type timerKind string

const (
	// timerDue wakes the gaps of a service that fall due in a bucket.
	timerDue timerKind = "due"
	// timerPass is a restoration pass of a service.
	timerPass timerKind = "pass"
	// timerAdvise is the sweep that looks at every tender for an art. 25
	// advice.
	timerAdvise timerKind = "advise"
	// timerGap is one gap's own timer, as versions before the batch
	// pipeline set them: one that was pending at the upgrade still fires.
	timerGap timerKind = "gap"
)

// timer is a durable timer, as it travels in its messages.
type timer struct {
	Kind    timerKind `json:"kind"`
	Service string    `json:"service,omitempty"`
	Pass    int       `json:"pass,omitempty"`
	// GapKey names the gap of a timerGap.
	GapKey string    `json:"gap_key,omitempty"`
	At     time.Time `json:"at"`
}

// key names the timer: setting a timer of the same key replaces it.
func (t timer) key() string {
	switch t.Kind {
	case timerDue:
		return "due." + gap.Token(t.Service) + "." + strconv.FormatInt(t.At.Unix(), 10)
	case timerPass:
		return "pass." + gap.Token(t.Service) + "." + strconv.Itoa(t.Pass)
	case timerGap:
		return t.GapKey
	}
	return string(t.Kind)
}

// legacyTimer is the body of the timers of earlier versions: a key.
type legacyTimer struct {
	Key string    `json:"key"`
	At  time.Time `json:"at"`
}

// parseTimer reads a fired timer's body.
func parseTimer(data []byte) (timer, error) {
	var t timer
	if err := json.Unmarshal(data, &t); err != nil {
		return t, fmt.Errorf("timer body: %w", err)
	}
	if t.Kind != "" {
		return t, nil
	}
	var l legacyTimer
	if err := json.Unmarshal(data, &l); err != nil || l.Key == "" {
		return t, fmt.Errorf("timer body without kind or key: %q", data)
	}
	switch parts := strings.Split(l.Key, "."); {
	case parts[0] == "gap":
		return timer{Kind: timerGap, GapKey: l.Key, At: l.At}, nil
	case parts[0] == "pass" && len(parts) == 3:
		n, err := strconv.Atoi(parts[2])
		if err != nil {
			return t, fmt.Errorf("timer %q: malformed pass", l.Key)
		}
		return timer{Kind: timerPass, Service: gap.Untoken(parts[1]), Pass: n, At: l.At}, nil
	case l.Key == string(timerAdvise):
		return timer{Kind: timerAdvise, At: l.At}, nil
	}
	return t, fmt.Errorf("timer %q: unknown", l.Key)
}

// dueTimer returns the timer that wakes a gap of service due at wake: the
// bucket of TimerResolution that ends at or after wake.
func (o *Options) dueTimer(service string, wake time.Time) timer {
	res := o.TimerResolution
	at := wake.Truncate(res)
	if at.Before(wake) {
		at = at.Add(res)
	}
	return timer{Kind: timerDue, Service: service, At: at}
}

// timers sets durable timers, each due bucket once while it is pending.
type timers struct {
	js   jetstream.JetStream
	opts *Options
	m    *Metrics

	mu    sync.Mutex
	armed map[string]time.Time // due timers set by this leader and not fired yet
}

func newTimers(js jetstream.JetStream, o *Options, m *Metrics) *timers {
	return &timers{js: js, opts: o, m: m, armed: map[string]time.Time{}}
}

// reset forgets what was set: a new leader sets again what it needs.
func (ts *timers) reset() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	clear(ts.armed)
}

// fired forgets a due timer that fired: a gap that needs its bucket again
// (the timer fired early) sets it again.
func (ts *timers) fired(t timer) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.armed, t.key())
	for k, at := range ts.armed {
		if at.Before(t.At.Add(-time.Hour)) { // long gone: fired while another replica led
			delete(ts.armed, k)
		}
	}
}

// set sets the timers in one pipelined flush and waits for them to be
// stored. A due timer this leader set is not set again while it is more
// than a minute away: a batch that counts on a bucket about to fire sets
// it again, since the bucket's scan may have read the records before the
// batch commits; set again after it fired, the timer fires once more and
// finds what the first scan missed.
func (ts *timers) set(ctx context.Context, list []timer) error {
	if len(list) == 0 {
		return nil
	}
	soon := ts.opts.Now().Add(time.Minute)
	var (
		msgs []*nats.Msg
		due  []timer
		seen = map[string]bool{}
	)
	ts.mu.Lock()
	for _, t := range list {
		k := t.key()
		if seen[k] {
			continue
		}
		seen[k] = true
		if t.Kind == timerDue {
			if _, ok := ts.armed[k]; ok && t.At.After(soon) {
				continue
			}
			due = append(due, t)
		}
		msgs = append(msgs, ts.msg(t))
	}
	ts.mu.Unlock()
	if len(msgs) == 0 {
		return nil
	}
	if _, err := publishAll(ctx, ts.js, msgs); err != nil {
		return fmt.Errorf("set timers: %w", err)
	}
	// Marked once stored: another batch that needs the same bucket
	// meanwhile sets it too (the same schedule again, harmless) rather than
	// count on one that may fail.
	ts.mu.Lock()
	for _, t := range due {
		ts.armed[t.key()] = t.At
	}
	ts.mu.Unlock()
	ts.m.timersSet.Add(int64(len(msgs)))
	return nil
}

// msg builds the schedule of t.
func (ts *timers) msg(t timer) *nats.Msg {
	t.At = ceilSecond(t.At)
	body, _ := json.Marshal(t)
	key := t.key()
	msg := nats.NewMsg(ts.opts.timerSubject("sched", key))
	msg.Data = body
	msg.Header.Set("Nats-Schedule", "@at "+ceilSecond(ts.opts.ToServer(t.At)).UTC().Format(time.RFC3339))
	msg.Header.Set("Nats-Schedule-Target", ts.opts.timerSubject("fire", key))
	return msg
}

// ceilSecond rounds t up to a whole second: schedules have one-second
// resolution, and firing late is safe where firing early is not.
func ceilSecond(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	if tr := t.Truncate(time.Second); !tr.Equal(t) {
		return tr.Add(time.Second)
	}
	return t
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
