package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
)

// This file holds the read-only queries behind `promemoria pending`,
// `promemoria services`, /v1/pending and /v1/services. They read the state
// bucket and never write to it, so they are safe to run against a live
// deployment from any number of clients.

// State returns the worker's state bucket (services, tenders, gaps).
func (w *Worker) State() jetstream.KeyValue { return w.res.state }

// Settle returns how long a service must stay up before its gaps are
// reminded.
func (w *Worker) Settle() time.Duration { return w.opts.Policy.Settle }

// Now returns the time on the worker's clock.
func (w *Worker) Now() time.Time { return w.now() }

// ErrBadFilter is wrapped by the error Pending returns for a filter it
// cannot apply (an unknown kind).
var ErrBadFilter = errors.New("bad filter")

// PendingFilter selects open gaps; an empty field matches every gap.
type PendingFilter struct {
	// Service is the ANAC service the gap waits for (smartcig, pcp, payments…).
	Service string
	// TenderID is the tender's id.
	TenderID string
	// Kind is cig or contribution.
	Kind events.Kind
	// All also lists closed records: resolved gaps and bids on exempt lots.
	All bool
}

// The states of a pending gap, from the reminders' point of view.
const (
	// PendingServiceDown: its service is down; no reminder until it is back.
	PendingServiceDown = "service_down"
	// PendingSettling: its service is back but has not yet stayed up for
	// settle.
	PendingSettling = "settling"
	// PendingDue: its service is ready and the first reminder is about to go.
	PendingDue = "due"
	// PendingReminded: reminded at least once; the next one goes at next_due.
	PendingReminded = "reminded"
	// PendingWaitingCIG: a contribution gap whose service is ready but
	// whose lot has no CIG yet: the bidder cannot pay without it.
	PendingWaitingCIG = "waiting_cig"
	// PendingResolved: closed (listed with All only).
	PendingResolved = "resolved"
	// PendingExempt: a bid on a lot below the contribution threshold; no
	// gap was opened (listed with All only).
	PendingExempt = "exempt"
)

// WaitingCIG is the entry of PendingGap.WaitingFor that stands for the
// lot's CIG.
const WaitingCIG = "cig"

// PendingGap is one open gap as the operator sees it.
type PendingGap struct {
	Key                string        `json:"key"`
	TenderID           string        `json:"tender_id"`
	TenderTitle        string        `json:"tender_title,omitempty"`
	LotID              string        `json:"lot_id"`
	Kind               events.Kind   `json:"kind"`
	Service            string        `json:"service"`
	OperatorFiscalCode string        `json:"operator_fiscal_code,omitempty"`
	Recipient          events.Person `json:"recipient"`
	// RemindersSent is the gap's sequence: how many reminders went out.
	RemindersSent  int       `json:"reminders_sent"`
	LastRemindedAt time.Time `json:"last_reminded_at,omitzero"`
	// NextDue is when the gap's durable timer fires next (a repeat or the
	// escalation); zero while nothing is scheduled, e.g. while its service
	// is down and no escalation is pending.
	NextDue     time.Time `json:"next_due,omitzero"`
	Deadline    time.Time `json:"deadline,omitzero"`
	OpenedAt    time.Time `json:"opened_at"`
	Escalated   bool      `json:"escalated"`
	EscalatedAt time.Time `json:"escalated_at,omitzero"`
	// ServiceUp tells whether the gap's service is up; ReadyAt is when its
	// gaps may be reminded (up since + settle), zero while it is down.
	ServiceUp bool      `json:"service_up"`
	ReadyAt   time.Time `json:"ready_at,omitzero"`
	// CIG is the lot's CIG, when it has one.
	CIG string `json:"cig,omitempty"`
	// ContributionCents is the contribution owed (contribution gaps whose
	// amount is known); ContributionTable names the schedule.
	ContributionCents int64  `json:"contribution_cents,omitempty"`
	ContributionTable string `json:"contribution_table,omitempty"`
	// WaitingFor lists what the gap's reminders wait for: its service
	// (while down or settling) and, for a contribution, "cig" while its lot
	// has none. Empty when nothing stops them.
	WaitingFor []string `json:"waiting_for,omitempty"`
	// State is one of service_down, settling, waiting_cig, due, reminded,
	// and, with All, resolved or exempt.
	State string `json:"state"`
}

// Pending lists the open gaps that match f (with f.All, the resolved and
// exempt records too), sorted by deadline (gaps with
// no deadline last), then tender, lot, kind and operator. settle and now
// decide whether a gap's service is still settling.
func Pending(ctx context.Context, kv jetstream.KeyValue, f PendingFilter, settle time.Duration, now time.Time) ([]PendingGap, error) {
	if f.Kind != "" && f.Kind != events.KindCIG && f.Kind != events.KindContribution {
		return nil, fmt.Errorf("%w: kind %q: want %s or %s", ErrBadFilter, f.Kind, events.KindCIG, events.KindContribution)
	}
	services := map[string]*outage.Service{}
	out := []PendingGap{}
	err := eachRecord(ctx, kv, pendingFilter(f), func(key string, raw []byte, rev uint64) error {
		if !f.All && closedIn(raw) {
			return nil
		}
		g := &gap.Gap{}
		if err := json.Unmarshal(raw, g); err != nil {
			return fmt.Errorf("decode %s (revision %d): %w", key, rev, err)
		}
		if g.Key == "" {
			g.Key = key
		}
		// The key filter already selected; these checks guard against a
		// record whose content disagrees with its key.
		if (!g.Open && !f.All) || (f.TenderID != "" && g.TenderID != f.TenderID) || (f.Kind != "" && g.Kind != f.Kind) ||
			(f.Service != "" && g.Service != f.Service) {
			return nil
		}
		svc, ok := services[g.Service]
		if !ok {
			svc = &outage.Service{Name: g.Service}
			if _, err := getJSON(ctx, kv, serviceKey(g.Service), svc); err != nil {
				return err
			}
			services[g.Service] = svc
		}
		out = append(out, PendingOf(g, svc, settle, now))
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b PendingGap) int {
		switch {
		case a.Deadline.IsZero() != b.Deadline.IsZero():
			if a.Deadline.IsZero() {
				return 1
			}
			return -1
		}
		return cmp.Or(a.Deadline.Compare(b.Deadline), cmp.Compare(a.TenderID, b.TenderID),
			cmp.Compare(a.LotID, b.LotID), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.OperatorFiscalCode, b.OperatorFiscalCode))
	})
	return out, nil
}

// pendingFilter narrows the key listing on the server: every gap key is
// gap.<service>.<kind>.<tender>.<lot>[.<operator>].
func pendingFilter(f PendingFilter) string {
	tok := func(s string) string {
		if s == "" {
			return "*"
		}
		return gap.Token(s)
	}
	return "gap." + tok(f.Service) + "." + tok(string(f.Kind)) + "." + tok(f.TenderID) + ".>"
}

// PendingOf describes one gap record as Pending lists it, given the state
// of its service (nil: never reported down), settle and now.
func PendingOf(g *gap.Gap, svc *outage.Service, settle time.Duration, now time.Time) PendingGap {
	if svc == nil {
		svc = &outage.Service{Name: g.Service}
	}
	p := PendingGap{
		Key: g.Key, TenderID: g.TenderID, TenderTitle: g.Title, LotID: g.LotID, Kind: g.Kind, Service: g.Service,
		OperatorFiscalCode: g.OperatorFiscalCode(), Recipient: g.Recipient(),
		RemindersSent: g.Sequence, LastRemindedAt: g.LastRemindedAt, NextDue: g.WakeAt,
		Deadline: g.Deadline, OpenedAt: g.OpenedAt, Escalated: g.Escalated, EscalatedAt: g.EscalatedAt,
		ServiceUp: svc.Up(), CIG: g.CIG,
	}
	if g.ContributionKnown {
		p.ContributionCents, p.ContributionTable = g.ContributionCents, g.ContributionTable
	}
	ready, ok := svc.ReadyAt(settle)
	if !ok || now.Before(ready) {
		p.WaitingFor = append(p.WaitingFor, g.Service)
	}
	if g.NeedsCIG() {
		p.WaitingFor = append(p.WaitingFor, WaitingCIG)
	}
	switch {
	case g.Exempt:
		p.State, p.WaitingFor = PendingExempt, nil
	case !g.Open:
		p.State, p.WaitingFor = PendingResolved, nil
	case !ok:
		p.State = PendingServiceDown
	case g.NeedsCIG():
		p.State = PendingWaitingCIG
	case g.Sequence > 0:
		p.State = PendingReminded
	case now.Before(ready):
		p.State = PendingSettling
	default:
		p.State = PendingDue
	}
	if ok {
		p.ReadyAt = ready
	}
	return p
}

// ServiceStatus is the state of one ANAC service.
type ServiceStatus struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// UpSince is when the current run of "up" began (zero if the service
	// is down or was never reported down).
	UpSince time.Time `json:"up_since,omitzero"`
	// DownSince is when the current outage began (zero if up).
	DownSince time.Time `json:"down_since,omitzero"`
	// LastOutage is the latest outage; its to is absent while it lasts.
	LastOutage *events.Outage `json:"last_outage,omitempty"`
	// Outages counts the outages remembered.
	Outages int `json:"outages"`
	// OpenGaps counts the gaps that wait for the service.
	OpenGaps int `json:"open_gaps"`
	// Reported is false for a service promemoria knows only because gaps
	// wait for it: no portal event ever named it, so it counts as up.
	Reported bool `json:"reported"`
}

// Services returns every service promemoria has seen, sorted by name: those
// named by a portal event and those that open gaps wait for.
func Services(ctx context.Context, kv jetstream.KeyValue) ([]ServiceStatus, error) {
	byName := map[string]*ServiceStatus{}
	err := eachRecord(ctx, kv, "svc.>", func(key string, raw []byte, rev uint64) error {
		svc := &outage.Service{}
		if err := json.Unmarshal(raw, svc); err != nil {
			return fmt.Errorf("decode %s (revision %d): %w", key, rev, err)
		}
		name := svc.Name
		st := &ServiceStatus{
			Name: name, Up: svc.Up(), UpSince: svc.UpSince(), DownSince: svc.DownSince(),
			Outages: len(svc.Outages()), Reported: true,
		}
		if o, ok := svc.LastOutage(); ok {
			st.LastOutage = &o
		}
		byName[name] = st
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachRecord(ctx, kv, "gap.>", func(key string, raw []byte, _ uint64) error {
		var g struct {
			Service string `json:"service"`
			Open    bool   `json:"open"`
		}
		// Resolved gaps stay as closed records: count the open ones only.
		if err := json.Unmarshal(raw, &g); err != nil || !g.Open {
			return nil
		}
		name := g.Service
		st, ok := byName[name]
		if !ok {
			st = &ServiceStatus{Name: name, Up: true}
			byName[name] = st
		}
		st.OpenGaps++
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]ServiceStatus, 0, len(byName))
	for _, st := range byName {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b ServiceStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// eachRecord calls fn with the latest value of every key of kv that
// matches filter, streamed from the bucket (a watcher delivers the current
// values, then the marker this stops at), so memory does not grow with
// the number of keys. Deleted keys are skipped.
func eachRecord(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(key string, raw []byte, rev uint64) error) error {
	wt, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("list %s: %w", filter, err)
	}
	defer func() { _ = wt.Stop() }()
	for {
		select {
		case e, ok := <-wt.Updates():
			if !ok {
				return fmt.Errorf("list %s: watcher closed", filter)
			}
			if e == nil {
				return nil // every current value was delivered
			}
			if err := fn(e.Key(), e.Value(), e.Revision()); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("list %s: %w", filter, ctx.Err())
		}
	}
}

// closedIn reports whether a stored gap record is closed.
func closedIn(raw []byte) bool {
	var g struct {
		Open bool `json:"open"`
	}
	return json.Unmarshal(raw, &g) == nil && !g.Open
}
