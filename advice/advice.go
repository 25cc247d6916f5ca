// Package advice decides when promemoria advises a RUP to suspend or extend
// a tender's offer deadline because ANAC services its bidders needed were
// down during the offer period (art. 25, comma 2, d.lgs. 36/2023; art. 79,
// comma 5-bis, d.lgs. 50/2016 for tenders published before 1 July 2023).
//
// Decide is a pure function of the tender record, the services' histories,
// the policy and the time: whichever arrives first, the tender or the
// outage's events, the same advice comes out, with the same id.
package advice

import (
	"cmp"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/outage"
	"github.com/promemoria/promemoria/tender"
)

// The legal bases of the advice, as cited in Italian.
const (
	BasisCode2023 = "art. 25, comma 2, d.lgs. 36/2023"
	BasisCode2016 = "art. 79, comma 5-bis, d.lgs. 50/2016"
)

var rome = calendar.Rome()

// code2023From is when D.Lgs. 36/2023 took effect for new procedures.
var code2023From = time.Date(2023, time.July, 1, 0, 0, 0, 0, rome)

// LegalBasis returns the rule that lets an authority suspend or extend an
// offer deadline for a platform malfunction, for a tender published at
// publishedAt: the new code from 1 July 2023 (Rome time), the old before.
// A zero time is taken as recent.
func LegalBasis(publishedAt time.Time) string {
	if !publishedAt.IsZero() && publishedAt.Before(code2023From) {
		return BasisCode2016
	}
	return BasisCode2023
}

// Policy holds what Decide needs beyond the tender and the services.
type Policy struct {
	// BidderServices are the services every bidder needs during the offer
	// period (payments, fvoe).
	BidderServices []string
	// Settle is how long a service must stay up before its outage counts
	// as over.
	Settle time.Duration
	// Calendar moves a proposed deadline off Saturdays, Sundays, holidays
	// and closure days; nil means the national holidays in Europe/Rome.
	Calendar *calendar.Calendar
	// MinOverlap is the least overlap that gives an advice (0: any).
	MinOverlap time.Duration
	// ContributionService is the bidder service through which the
	// contribution is paid (payments): it counts only for a tender with a
	// lot whose bidders owe one, as Owes says. A nil Owes counts it always.
	ContributionService string
	Owes                func(baseCents int64, publishedAt time.Time) bool
}

// owes reports whether some published lot of t makes its bidders pay a
// contribution; a lot whose amount is not known is taken as owing.
func (p Policy) owes(t *tender.Tender) bool {
	if p.Owes == nil {
		return true
	}
	for _, l := range t.Lots {
		if l.Published && (l.BaseAmountCents == 0 || p.Owes(l.BaseAmountCents, t.PublishedAt)) {
			return true
		}
	}
	return false
}

// Advice is an advice.deadline_extension to publish.
type Advice struct {
	ID       string
	Deadline time.Time
	// Proposed is Deadline plus Overlap, rolled to the next working day.
	Proposed time.Time
	// Overlap is the union of the outages' overlaps with the offer period,
	// in whole seconds.
	Overlap    time.Duration
	Outages    []events.OutageSpan
	LegalBasis string
}

// window is a span during which an outage of service hurt the tender.
type window struct {
	service  string
	from, to time.Time
}

// Decide returns the advice the tender calls for at now, or nil: none is
// due, the overlap is under MinOverlap, one with the same or a larger
// overlap was already sent, or an outage that overlaps the offer period is
// not over (restored and settled) yet. service returns a service's history, nil if never reported.
func Decide(t *tender.Tender, service func(name string) *outage.Service, p Policy, now time.Time) *Advice {
	if t.Cancelled || t.PublishedAt.IsZero() || t.OfferDeadline.IsZero() || !now.Before(t.OfferDeadline) {
		return nil
	}
	var wins []window
	for _, s := range p.BidderServices {
		if s == p.ContributionService && !p.owes(t) {
			continue // nobody pays: the payments platform did not matter
		}
		wins = append(wins, window{s, t.PublishedAt, t.OfferDeadline})
	}
	for _, l := range t.Lots {
		if !l.Published || !l.MissingAtPublication || l.CIGService == "" {
			continue
		}
		// The lot's CIG service mattered while the lot lacked its CIG.
		end := t.OfferDeadline
		if l.CIG != "" && l.CIGRef.Time.Before(end) {
			end = l.CIGRef.Time
		}
		if end.After(t.PublishedAt) {
			wins = append(wins, window{l.CIGService, t.PublishedAt, end})
		}
	}
	var (
		spans []events.OutageSpan
		parts [][2]time.Time
	)
	for _, name := range services(wins) {
		svc := service(name)
		if svc == nil {
			continue
		}
		ready, up := svc.ReadyAt(p.Settle)
		settled := up && !now.Before(ready)
		outs := svc.Outages()
		for i, o := range outs {
			last := i == len(outs)-1
			to := o.To
			if to.IsZero() {
				to = now
			}
			hit := false
			for _, w := range wins {
				if w.service != name {
					continue
				}
				from, until := later(o.From, w.from), earlier(to, w.to)
				if from.Before(until) {
					hit = true
					parts = append(parts, [2]time.Time{from, until})
				}
			}
			if !hit {
				continue
			}
			if last && !settled {
				return nil // not over yet: one advice with the whole total
			}
			spans = append(spans, events.OutageSpan{Service: name, From: o.From.UTC(), To: o.To.UTC()})
		}
	}
	overlap := union(parts).Truncate(time.Second)
	if overlap <= 0 || overlap < p.MinOverlap {
		return nil
	}
	if t.Advised != nil && t.Advised.OverlapSeconds >= int64(overlap/time.Second) {
		return nil
	}
	slices.SortFunc(spans, func(a, b events.OutageSpan) int {
		return cmp.Or(a.From.Compare(b.From), cmp.Compare(a.Service, b.Service))
	})
	proposed := t.OfferDeadline.Add(overlap)
	if p.Calendar != nil {
		proposed = p.Calendar.RollTerm(proposed)
	} else {
		proposed = calendar.New(rome).RollTerm(proposed)
	}
	return &Advice{
		ID: id(t, spans), Deadline: t.OfferDeadline, Proposed: proposed,
		Overlap: overlap, Outages: spans, LegalBasis: LegalBasis(t.PublishedAt),
	}
}

// services returns the services the windows name, each once, sorted.
func services(wins []window) []string {
	var out []string
	for _, w := range wins {
		if !slices.Contains(out, w.service) {
			out = append(out, w.service)
		}
	}
	slices.Sort(out)
	return out
}

// union returns the total length of the union of the intervals.
func union(parts [][2]time.Time) time.Duration {
	slices.SortFunc(parts, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	var total time.Duration
	var cur [2]time.Time
	for i, p := range parts {
		if i == 0 || p[0].After(cur[1]) {
			if i > 0 {
				total += cur[1].Sub(cur[0])
			}
			cur = p
			continue
		}
		cur[1] = later(cur[1], p[1])
	}
	if len(parts) > 0 {
		total += cur[1].Sub(cur[0])
	}
	return total
}

// id names the advice by its tender, its offer period and the outages it
// counts: the same outages give the same id, a later outage (or a changed
// offer period) a new one.
func id(t *tender.Tender, spans []events.OutageSpan) string {
	h := sha256.New()
	h.Write([]byte(t.TenderID))
	h.Write([]byte{0})
	var b [8]byte
	for _, at := range []time.Time{t.PublishedAt, t.OfferDeadline} {
		binary.BigEndian.PutUint64(b[:], uint64(at.UnixNano()))
		h.Write(b[:])
	}
	for _, s := range spans {
		h.Write([]byte(s.Service))
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(b[:], uint64(s.From.UnixNano()))
		h.Write(b[:])
		binary.BigEndian.PutUint64(b[:], uint64(s.To.UnixNano()))
		h.Write(b[:])
	}
	sum := h.Sum(nil)
	return "adv-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15]))
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// earlier returns the earlier of a and b.
func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
