package reliability

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
)

// gapKey names a gap the way reminders do.
type gapKey struct {
	Kind   events.Kind
	Tender string
	Lot    string
	Op     string
}

func (k gapKey) String() string {
	s := string(k.Kind) + " " + k.Tender + "/" + k.Lot
	if k.Op != "" {
		s += "/" + k.Op
	}
	return s
}

// gapPlan is what the test expects of a gap.
type gapPlan struct {
	Key       gapKey
	Service   string
	Recipient string // e-mail of the reminder's recipient
	CC        string // e-mail in copy (the RUP, for a contribution)
	// Closed is true if an input of the scenario closes the gap (a valid
	// cig_assigned, a contribution_paid or a cancellation).
	Closed bool
	// WaitsCIG is true for a contribution gap on a lot that never gets a
	// CIG in the scenario: its bidder cannot pay, so it is never reminded.
	WaitsCIG bool
}

// worldSpec sizes a scenario.
type worldSpec struct {
	Tenders int
	// Lag is how many tenders later the closing events of a tender are
	// published (0: right after its own events).
	Lag int
	// Republish sends each tender.published twice, the second time after
	// its bids, so that a re-derivation of every gap of the tender runs
	// while its closing events are being applied.
	Republish bool
	// ExtraBids adds operators C, D, … admitted on lot 2 beside A; the
	// last of them is the one who pays.
	ExtraBids int
	// ExtraLots adds lots 4, 5, … without CIG (pcp) to every tender.
	ExtraLots int
	// BidDeadline gives every admission a regularise_by term (30 days).
	BidDeadline bool
}

// world is a generated scenario: the input events and the gaps they imply.
type world struct {
	Round   string
	Source  string
	Now     time.Time
	Tenders []string
	Gaps    map[gapKey]*gapPlan
	Ingest  []input
	Events  map[events.Type]int
}

var cigServices = []string{"", "smartcig", "simog", "pcp"}

// genWorld builds a scenario of n tenders published during an outage:
//   - lot 1 without CIG, issued by pcp (the default), smartcig or simog;
//   - lot 2 with a valid CIG (no gap);
//   - every third tender, lot 3 without CIG on smartcig;
//   - every second tender, operator A admitted with reserve on lot 2
//     (€500,000: a contribution is owed), every sixth operator B on lot 1
//     (whose contribution cannot be reminded until the lot has a CIG);
//   - closing inputs for some: a valid CIG for lot 1 (i%5==0), A pays
//     (i%8==0), the tender is cancelled (i%23==0).
func genWorld(round string, spec worldSpec, now time.Time) *world {
	w := &world{Round: round, Source: "https://eproc.example.it/" + round, Now: now, Gaps: map[gapKey]*gapPlan{}, Events: map[events.Type]int{}}
	base := now.Add(-50 * time.Minute)
	deadline := now.Add(30 * 24 * time.Hour)
	add := func(list *[]input, typ events.Type, id string, at time.Time, data any) {
		*list = append(*list, event(typ, w.Source, round+"-"+id, at, data))
		w.Events[typ]++
	}
	closings := make([][]input, spec.Tenders)
	for i := range spec.Tenders {
		tid := fmt.Sprintf("T%s-%05d", round, i)
		w.Tenders = append(w.Tenders, tid)
		rup := events.Person{Name: fmt.Sprintf("RUP %d", i), Email: fmt.Sprintf("rup.%s.%d@ente.example.it", strings.ToLower(round), i)}
		ms := time.Duration(i) * time.Millisecond
		v1, _ := cig.GenerateSIMOGv1(uint32(i%9_000_000 + 1))
		lots := []events.Lot{
			{LotID: "1", CIGService: cigServices[i%4], BaseAmountCents: 20_000_000},
			{LotID: "2", CIG: v1, BaseAmountCents: 50_000_000},
		}
		if i%3 == 0 {
			lots = append(lots, events.Lot{LotID: "3", CIGService: "smartcig", BaseAmountCents: 10_000_000})
		}
		for j := range spec.ExtraLots {
			lots = append(lots, events.Lot{LotID: fmt.Sprintf("%d", 4+j), CIGService: "pcp", BaseAmountCents: 10_000_000})
		}
		pub := events.TenderPublished{
			TenderID: tid, Title: "Gara " + tid, Authority: events.Authority{FiscalCode: "80000000000", Name: "Comune di Prova"},
			RUP: rup, PublishedAt: base.Add(ms), OfferDeadline: deadline, Lots: lots,
		}
		add(&w.Ingest, events.TypeTenderPublished, fmt.Sprintf("pub-%05d", i), base.Add(ms), pub)
		cancelled := i%23 == 0
		for _, l := range lots {
			if l.CIG != "" {
				continue
			}
			svc := l.CIGService
			if svc == "" {
				svc = "pcp"
			}
			k := gapKey{Kind: events.KindCIG, Tender: tid, Lot: l.LotID}
			w.Gaps[k] = &gapPlan{Key: k, Service: svc, Recipient: rup.Email, Closed: cancelled || (l.LotID == "1" && i%5 == 0)}
		}
		bid := func(lot, op string, paid bool) {
			lotGetsCIG := lot == "2" || i%5 == 0
			o := events.Operator{FiscalCode: fmt.Sprintf("%s%s%05d", op, round, i), Name: "Operatore " + op, Email: fmt.Sprintf("%s.%d@pec.example.it", strings.ToLower(op+round), i)}
			adm := events.AdmittedWithReserve{TenderID: tid, LotID: lot, Operator: o}
			if spec.BidDeadline {
				adm.RegulariseBy = deadline
			}
			add(&w.Ingest, events.TypeAdmittedWithReserve, fmt.Sprintf("adm-%s-%05d", op, i), base.Add(10*time.Minute+ms), adm)
			k := gapKey{Kind: events.KindContribution, Tender: tid, Lot: lot, Op: o.FiscalCode}
			w.Gaps[k] = &gapPlan{Key: k, Service: "payments", Recipient: o.Email, CC: rup.Email, Closed: cancelled || paid, WaitsCIG: !lotGetsCIG}
			if paid {
				add(&closings[i], events.TypeContributionPaid, fmt.Sprintf("paid-%s-%05d", op, i), base.Add(20*time.Minute+ms),
					events.ContributionPaid{TenderID: tid, LotID: lot, OperatorFiscalCode: o.FiscalCode, Receipt: fmt.Sprintf("IUV-%s-%d", round, i)})
			}
		}
		if i%2 == 0 {
			ops := append([]string{"A"}, []string{"C", "D", "E", "F"}[:spec.ExtraBids]...)
			payEvery := 8
			if spec.Republish {
				payEvery = 4
			}
			for j, op := range ops {
				bid("2", op, j == len(ops)-1 && i%payEvery == 0)
			}
		}
		if i%6 == 0 {
			bid("1", "B", false)
		}
		if spec.Republish {
			add(&w.Ingest, events.TypeTenderPublished, fmt.Sprintf("pub2-%05d", i), base.Add(15*time.Minute+ms), pub)
		}
		if i%5 == 0 {
			c, _ := cig.GenerateSIMOGv2('B', uint32(i))
			add(&closings[i], events.TypeCIGAssigned, fmt.Sprintf("cig-%05d", i), base.Add(20*time.Minute+ms),
				events.CIGAssigned{TenderID: tid, LotID: "1", CIG: c})
		}
		if cancelled {
			add(&closings[i], events.TypeTenderCancelled, fmt.Sprintf("cancel-%05d", i), base.Add(25*time.Minute+ms),
				events.TenderCancelled{TenderID: tid, Reason: "annullata in autotutela"})
		}
		if j := i - spec.Lag; j >= 0 {
			w.Ingest = append(w.Ingest, closings[j]...)
		}
	}
	for j := max(0, spec.Tenders-spec.Lag); j < spec.Tenders && spec.Lag > 0; j++ {
		w.Ingest = append(w.Ingest, closings[j]...)
	}
	return w
}

// open returns the gaps left open by the scenario's inputs.
func (w *world) open() []*gapPlan {
	var out []*gapPlan
	for _, g := range w.Gaps {
		if !g.Closed {
			out = append(out, g)
		}
	}
	return out
}

// cancelSome returns a tender.cancelled for every n-th tender (from the
// r-th), at time at, and marks their gaps closed by an input.
func (w *world) cancelSome(n, r int, at time.Time) []input {
	var out []input
	for i, tid := range w.Tenders {
		if i%n != r {
			continue
		}
		out = append(out, event(events.TypeTenderCancelled, w.Source, fmt.Sprintf("%s-mid-cancel-%05d", w.Round, i), at,
			events.TenderCancelled{TenderID: tid, Reason: "annullata durante il ripristino"}))
		for k, g := range w.Gaps {
			if k.Tender == tid {
				g.Closed = true
			}
		}
	}
	return out
}

// cancellations returns one tender.cancelled per tender, at time at.
func (w *world) cancellations(at time.Time) []input {
	var out []input
	for i, tid := range w.Tenders {
		out = append(out, event(events.TypeTenderCancelled, w.Source, fmt.Sprintf("%s-final-cancel-%05d", w.Round, i), at,
			events.TenderCancelled{TenderID: tid, Reason: "fine della prova"}))
	}
	return out
}

// portal returns a portal.down or portal.up for every service.
func portal(source, id string, up bool, at time.Time) input {
	typ := events.TypePortalDown
	if up {
		typ = events.TypePortalUp
	}
	return event(typ, source, id, at, events.PortalChange{Notice: "https://www.anticorruzione.it/-/avviso"})
}

// key returns the gap a reminder or resolution is about.
func (o out) key() (gapKey, bool) {
	switch {
	case o.Reminder != nil:
		return gapKey{o.Reminder.Kind, o.Reminder.TenderID, o.Reminder.LotID, o.Reminder.OperatorFiscalCode}, true
	case o.Resolved != nil:
		return gapKey{o.Resolved.Kind, o.Resolved.TenderID, o.Resolved.LotID, o.Resolved.OperatorFiscalCode}, true
	}
	return gapKey{}, false
}

// ledger is the output stream sorted by gap.
type ledger struct {
	All         []out
	IDs         map[string]int
	Reminders   map[gapKey][]out // reminder.cig and reminder.contribution, stream order
	Escalations map[gapKey][]out
	Resolved    map[gapKey][]out
	Dead        []out
	Bad         []out
}

func analyse(msgs []out) *ledger {
	l := &ledger{All: msgs, IDs: map[string]int{}, Reminders: map[gapKey][]out{}, Escalations: map[gapKey][]out{}, Resolved: map[gapKey][]out{}}
	for _, o := range msgs {
		l.IDs[o.Env.ID]++
		k, _ := o.key()
		switch {
		case o.Bad != "":
			l.Bad = append(l.Bad, o)
		case o.Dead != nil:
			l.Dead = append(l.Dead, o)
		case o.Resolved != nil:
			l.Resolved[k] = append(l.Resolved[k], o)
		case o.Reminder != nil && o.Reminder.Escalation:
			l.Escalations[k] = append(l.Escalations[k], o)
		case o.Reminder != nil:
			l.Reminders[k] = append(l.Reminders[k], o)
		}
	}
	return l
}

// reminderCount counts reminders (not escalations) of every gap.
func (l *ledger) reminderCount() int {
	n := 0
	for _, r := range l.Reminders {
		n += len(r)
	}
	return n
}

func (l *ledger) count(m map[gapKey][]out) int {
	n := 0
	for _, r := range m {
		n += len(r)
	}
	return n
}

// problems collects invariant violations, capped so a failure stays
// readable.
type problems struct {
	list  []string
	total int
}

func (p *problems) add(format string, args ...any) {
	p.total++
	if len(p.list) < 25 {
		p.list = append(p.list, fmt.Sprintf(format, args...))
	}
}

func (p *problems) report(t testing.TB, what string) {
	t.Helper()
	if p.total == 0 {
		return
	}
	t.Errorf("%s: %d violations:\n  %s", what, p.total, strings.Join(p.list, "\n  "))
}

// checkOutputs checks what holds of any output stream: every message is a
// well-formed CloudEvent whose id is its Nats-Msg-Id and its reminder_id
// (deterministic: gap.ReminderID of the gap, type and sequence); no id
// appears twice; each gap's reminders are numbered 1, 2, 3 … in stream
// order; a gap has at most one escalation and one resolution; and, if
// strictOrder, no reminder follows the gap's resolution.
func checkOutputs(t testing.TB, l *ledger, strictOrder bool) {
	t.Helper()
	var p problems
	for _, o := range l.Bad {
		p.add("undecodable output %s", o)
	}
	for id, n := range l.IDs {
		if n > 1 {
			p.add("id %s on the output stream %d times", id, n)
		}
	}
	for _, o := range l.All {
		if o.Bad != "" {
			continue
		}
		if o.MsgID != o.Env.ID {
			p.add("%s: Nats-Msg-Id %q is not the CloudEvents id %q", o, o.MsgID, o.Env.ID)
		}
		if o.Env.Source != "promemoria" || o.Env.SpecVersion != "1.0" || o.Subject != prefix+"."+string(o.Env.Type) {
			p.add("%s: bad envelope source=%q specversion=%q subject=%q", o, o.Env.Source, o.Env.SpecVersion, o.Subject)
		}
		k, ok := o.key()
		if !ok {
			continue
		}
		id := gap.Identity{Kind: k.Kind, TenderID: k.Tender, LotID: k.Lot, OperatorFiscalCode: k.Op}
		var want, got string
		switch {
		case o.Resolved != nil:
			want, got = gap.ReminderID(id, events.TypeReminderResolved, 1), o.Resolved.ReminderID
		case o.Reminder.Escalation:
			want, got = gap.ReminderID(id, events.TypeReminderEscalation, 1), o.Reminder.ReminderID
		default:
			want, got = gap.ReminderID(id, o.Env.Type, o.Reminder.Sequence), o.Reminder.ReminderID
		}
		if got != want || o.Env.ID != want {
			p.add("%s: reminder_id %q, CloudEvents id %q, want the deterministic %q", o, got, o.Env.ID, want)
		}
	}
	for k, rs := range l.Reminders {
		for i, r := range rs {
			if r.Reminder.Sequence != i+1 {
				p.add("gap %s: sequences %v, want 1..%d", k, seqs(rs), len(rs))
				break
			}
		}
	}
	for k, e := range l.Escalations {
		if len(e) > 1 {
			p.add("gap %s escalated %d times", k, len(e))
		}
	}
	for k, r := range l.Resolved {
		if len(r) > 1 {
			p.add("gap %s resolved %d times", k, len(r))
		}
		if len(l.Reminders[k]) == 0 && len(l.Escalations[k]) == 0 {
			p.add("gap %s resolved but never reminded", k)
		}
		if strictOrder {
			for _, rm := range l.Reminders[k] {
				if rm.Seq > r[0].Seq {
					p.add("gap %s: %s after its resolution %s", k, rm, r[0])
				}
			}
		}
		if n := len(l.Reminders[k]); r[0].Resolved.RemindersSent != n {
			p.add("gap %s: resolution says %d reminders sent, the stream has %d", k, r[0].Resolved.RemindersSent, n)
		}
	}
	p.report(t, "output stream invariants")
}

func seqs(rs []out) []int {
	var s []int
	for _, r := range rs {
		s = append(s, r.Reminder.Sequence)
	}
	return s
}

// checkAgainstWorld checks the reminders of a scenario after its
// restoration: every gap the inputs left open got its first reminder, to
// the right person, exactly once, and is not resolved; a gap closed by an
// input was either never reminded, or reminded and then resolved exactly
// once (its closing input may have been applied after the restoration, when
// a crash delayed it); no other gap was reminded. If exactRepeats, no gap
// got a second reminder (the repeat interval is longer than the test).
func checkAgainstWorld(t testing.TB, w *world, l *ledger, exactRepeats bool) {
	t.Helper()
	var p problems
	for k, rs := range l.Reminders {
		g := w.Gaps[k]
		if g == nil {
			if strings.HasPrefix(k.Tender, "T"+w.Round+"-") {
				p.add("reminder for a gap the scenario never opened: %s", rs[0])
			}
			continue
		}
		r := rs[0].Reminder
		if r.Service != g.Service || r.Recipient.Email != g.Recipient || (g.CC != "" && (len(r.CC) != 1 || r.CC[0].Email != g.CC)) {
			p.add("gap %s: first reminder service=%s to=%s cc=%v, want service=%s to=%s cc=%s", k, r.Service, r.Recipient.Email, r.CC, g.Service, g.Recipient, g.CC)
		}
		if exactRepeats && len(rs) != 1 {
			p.add("gap %s: %d reminders (sequences %v), want exactly 1", k, len(rs), seqs(rs))
		}
	}
	for k, g := range w.Gaps {
		rs, res := l.Reminders[k], l.Resolved[k]
		switch {
		case g.WaitsCIG && len(rs) > 0:
			p.add("gap %s reminded though its lot has no CIG: %s", k, rs[0])
		case !g.Closed && !g.WaitsCIG && len(rs) == 0:
			p.add("open gap %s (service %s) never reminded", k, g.Service)
		case !g.Closed && len(res) > 0:
			p.add("open gap %s resolved: %s", k, res[0])
		case g.Closed && len(rs) > 0 && len(res) != 1:
			p.add("gap %s closed by an input was reminded (%v) but resolved %d times", k, seqs(rs), len(res))
		}
	}
	p.report(t, "reminders against the scenario")
}

// checkState compares the gap records of the state bucket with the gaps
// the scenario left open: one record per open gap, open, and reminded as
// many times as the output stream says.
//
// The bucket and the stream cannot be read at one instant, so the check
// brackets: the stream is read before and after the bucket. A reminder is
// committed in its gap before it is published, so a gap's sequence is at
// least its reminders on the stream before, and at most one more than on
// the stream after (a reminder committed, not yet published); only if
// nothing was in flight before and after and the stream did not grow
// must the two agree exactly.
func checkState(t testing.TB, c *client, w *world, col *collector) {
	t.Helper()
	stored := -1
	lBefore := analyse(nil)
	if col != nil {
		col.waitCaughtUp(t)
		lBefore = analyse(col.all())
		stored = len(lBefore.All)
	}
	quietBefore := quiet(c)
	recs, err := c.gapRecords()
	if err != nil {
		t.Errorf("read the state bucket: %v", err)
		return
	}
	settled := quietBefore && quiet(c)
	l := analyse(nil)
	if col != nil {
		col.waitCaughtUp(t)
		l = analyse(col.all())
		settled = settled && len(l.All) == stored
	}
	var p problems
	seen := map[gapKey]bool{}
	for key, g := range recs {
		k := gapKey{g.Kind, g.TenderID, g.LotID, g.OperatorFiscalCode()}
		if !strings.HasPrefix(k.Tender, "T"+w.Round+"-") {
			continue
		}
		seen[k] = true
		plan := w.Gaps[k]
		n, nBefore := len(l.Reminders[k]), len(lBefore.Reminders[k])
		switch {
		case plan == nil:
			p.add("state has gap %s the scenario never opened", key)
		case plan.Closed:
			p.add("state has gap %s open=%v sequence=%d, but an input closed it", key, g.Open, g.Sequence)
		case !g.Open:
			p.add("state has gap %s closed, but nothing closed it", key)
		case g.Sequence < nBefore || g.Sequence > n+1 || (settled && n != g.Sequence):
			p.add("state has gap %s with sequence %d, the output stream has %d reminders before reading it and %d after (settled: %v)",
				key, g.Sequence, nBefore, n, settled)
		case key != gap.Key(plan.Service, gap.Identity{Kind: k.Kind, TenderID: k.Tender, LotID: k.Lot, OperatorFiscalCode: k.Op}):
			p.add("state has gap %s under an unexpected key", key)
		}
	}
	for _, g := range w.open() {
		if !seen[g.Key] {
			p.add("open gap %s missing from the state bucket", g.Key)
		}
	}
	p.report(t, "state bucket against the scenario")
}

// checkClosed checks the end of a scenario once every tender has been
// cancelled: each reminded gap resolved exactly once, after its last
// reminder; no gap record and no gap timer left.
func checkClosed(t testing.TB, c *client, w *world, l *ledger) {
	t.Helper()
	var p problems
	for k, rs := range l.Reminders {
		if w.Gaps[k] == nil {
			continue
		}
		if n := len(l.Resolved[k]); n != 1 {
			p.add("gap %s reminded %d times, resolved %d times", k, len(rs), n)
		}
	}
	p.report(t, "resolutions after the final cancellation")
	recs, err := c.gapRecords()
	if err != nil {
		t.Errorf("read the state bucket: %v", err)
	}
	var left []string
	for k := range recs {
		left = append(left, k)
	}
	sort.Strings(left)
	if len(left) > 0 {
		t.Errorf("%d gap records left after every tender was cancelled, e.g. %v", len(left), left[:min(5, len(left))])
	}
	// A schedule set by an attempt that crashed before storing its gap can
	// outlive the gap when the tender is closed before the attempt is
	// retried: when it fires it finds no gap and does nothing. Such orphans
	// are reported, not failed; a timer whose gap is still stored was
	// checked above.
	if n, ok := c.pendingGapTimers(); !ok {
		t.Errorf("cannot read the timer stream")
	} else if n != 0 {
		t.Logf("%d orphan gap timers left (their gaps are gone; firing, they do nothing), e.g. %v", n, c.gapTimerKeys(5))
	}
}

// summary is a one-line account of a ledger.
func (l *ledger) summary() string {
	return fmt.Sprintf("%d outputs: %d reminders (%d gaps, %d first), %d escalations, %d resolved, %d dead letters; ids unique: %v",
		len(l.All), l.reminderCount(), len(l.Reminders), l.firsts(), l.count(l.Escalations), l.count(l.Resolved), len(l.Dead), l.unique())
}

func (l *ledger) firsts() int {
	n := 0
	for _, rs := range l.Reminders {
		if len(rs) > 0 && rs[0].Reminder.Sequence == 1 {
			n++
		}
	}
	return n
}

func (l *ledger) unique() bool {
	return !slices.ContainsFunc(mapsValues(l.IDs), func(n int) bool { return n > 1 })
}

func mapsValues(m map[string]int) []int {
	out := make([]int, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
